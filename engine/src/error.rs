//! Errors a person acts on. Each error type says what went wrong in its `Display` and, apart from
//! that, how to get past it in [`Hint::hint`]; [`render`] joins the two the one way every pipe
//! command prints them (`MESSAGE`, then `  = hint: HINT` on its own line), so no message carries a
//! hint glued into its text and a caller can show, log or test either part alone.

/// An error that may know the way out.
pub trait Hint: std::fmt::Display {
    /// What to do about it (a short imperative sentence), if pipe knows; `None` by default.
    fn hint(&self) -> Option<String> {
        None
    }
}

/// The message, then the hint (when there is one) on its own line, as pipe prints errors.
pub fn render(e: &dyn Hint) -> String {
    match e.hint() {
        Some(h) => format!("{e}\n  = hint: {h}"),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Locked(bool);
    impl std::fmt::Display for Locked {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("the store is locked")
        }
    }
    impl Hint for Locked {
        fn hint(&self) -> Option<String> {
            self.0.then(|| "wait, or pass --store DIR".into())
        }
    }

    #[test]
    fn the_hint_goes_on_its_own_line_only_when_there_is_one() {
        assert_eq!(render(&Locked(true)), "the store is locked\n  = hint: wait, or pass --store DIR");
        assert_eq!(render(&Locked(false)), "the store is locked");
    }
}
