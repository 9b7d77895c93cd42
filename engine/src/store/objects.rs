//! Immutable objects (`objects/<aa>/<blake3>[.ext]`): stored, verified, fetched from and uploaded to
//! the remote, quarantined when corrupt.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::io_err;
use super::{is_ext, is_hash, now, sync_dir, unique, Entry, Store, StoreError};
use crate::hash::hash_file;

/// A stored object: content hash, extension and size.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    /// blake3 of the content: 64 lowercase hex digits.
    pub hash: String,
    /// The output file's extension, without the dot; empty when it has none.
    pub ext: String,
    /// Size in bytes.
    pub size: u64,
}

impl ObjectRef {
    /// Whether the hash and extension are safe to place under `objects/` (a record read from a
    /// remote or edited by hand may hold anything; nothing unchecked becomes a path).
    pub fn is_valid(&self) -> bool {
        is_hash(&self.hash) && is_ext(&self.ext)
    }

    /// The hash's first 12 hex digits, for messages.
    pub fn short(&self) -> &str {
        &self.hash[..12.min(self.hash.len())]
    }
}

/// The result of checking a stored object against its [`ObjectRef`].
#[derive(Debug)]
pub enum Verify {
    /// Present, with the recorded size and hash.
    Ok,
    /// Not in the store (here, nor on the remote when there is one).
    Missing,
    /// Present, but its size or hash differs from the reference.
    Corrupt {
        /// What was found: the actual hash, or the size as `N bytes instead of M`.
        actual: String,
    },
    /// Not here, and the remote could not be read.
    Unavailable(String),
}

impl Store {
    fn object_rel(obj: &ObjectRef) -> String {
        Entry::Object(obj).rel()
    }

    /// Where object `obj` is (or would be) in the local directory; it may not be there.
    pub fn object_path(&self, obj: &ObjectRef) -> PathBuf {
        self.root.join(Self::object_rel(obj))
    }

    /// Uploads a local object unless the remote already holds one of the same size (content
    /// addressing: same name, same bytes; a repeated upload would be harmless, only slower).
    /// Returns whether it uploaded.
    pub(super) fn upload(&self, obj: &ObjectRef) -> Result<bool, StoreError> {
        let Some(r) = &self.remote else { return Ok(false) };
        let rel = Self::object_rel(obj);
        let known_bad = self.remote_corrupt.lock().unwrap_or_else(|e| e.into_inner()).remove(&obj.hash);
        if !known_bad && r.size(&rel)? == Some(obj.size) {
            return Ok(false);
        }
        r.put_file(&rel, &self.object_path(obj))?;
        Ok(true)
    }

    /// Downloads an object from the remote into the cache: into scratch, hash-checked, then
    /// renamed into place (read-only).
    fn download(&self, obj: &ObjectRef) -> Verify {
        let Some(r) = &self.remote else { return Verify::Missing };
        let tmp = self.path(Entry::Tmp(&format!("fetch-{}-{}", obj.short(), unique())));
        let got = r.get_to_file(&Self::object_rel(obj), obj.size, &tmp);
        let cleanup = || {
            let _ = fs::remove_file(&tmp);
        };
        let actual = match got {
            Ok(Some(h)) => h,
            Ok(None) => {
                cleanup();
                return Verify::Missing;
            }
            Err(e) => {
                cleanup();
                return Verify::Unavailable(crate::error::render(&e));
            }
        };
        let size = fs::metadata(&tmp).map(|m| m.len()).unwrap_or(0);
        if actual != obj.hash || size != obj.size {
            cleanup();
            tracing::warn!(object = %obj.hash, %actual, "remote object is corrupt; it will be recomputed and replaced");
            self.remote_corrupt.lock().unwrap_or_else(|e| e.into_inner()).insert(obj.hash.clone());
            return Verify::Corrupt { actual };
        }
        match self.place(&tmp, obj) {
            Ok(()) => Verify::Ok,
            Err(e) => {
                cleanup();
                Verify::Unavailable(crate::error::render(&e))
            }
        }
    }

    /// Moves a file whose content is `obj` into `objects/`: read-only, renamed, directory synced.
    fn place(&self, src: &Path, obj: &ObjectRef) -> Result<(), StoreError> {
        let dest = self.object_path(obj);
        let dir = dest.parent().expect("objects have a parent");
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let mut perms = fs::metadata(src).map_err(io_err(src))?.permissions();
        perms.set_readonly(true);
        fs::set_permissions(src, perms).map_err(io_err(src))?;
        fs::rename(src, &dest).map_err(io_err(&dest))?;
        sync_dir(dir);
        Ok(())
    }

    /// Moves a finished output file into the store (fsynced, renamed into place, made read-only).
    ///
    /// Objects are stored by content: a symlink is replaced by a regular file holding its target's
    /// bytes (the target itself is never moved or chmodded); anything but a regular file is an error.
    pub fn put_file(&self, src: &Path) -> Result<ObjectRef, StoreError> {
        let meta = fs::symlink_metadata(src).map_err(io_err(src))?;
        if meta.file_type().is_symlink() {
            let target = fs::metadata(src).map_err(io_err(src))?;
            if !target.is_file() {
                return Err(StoreError::Io {
                    path: src.display().to_string(),
                    source: io::Error::other("a symlink to something other than a regular file"),
                });
            }
            let copy = src.with_file_name(format!(".{}.{}.copy", src.file_name().and_then(|n| n.to_str()).unwrap_or("out"), unique()));
            fs::copy(src, &copy).map_err(io_err(src))?;
            fs::rename(&copy, src).map_err(io_err(src))?;
        } else if !meta.is_file() {
            return Err(StoreError::Io { path: src.display().to_string(), source: io::Error::other("not a regular file") });
        }
        let f = File::open(src).map_err(io_err(src))?;
        f.sync_all().map_err(io_err(src))?;
        let size = f.metadata().map_err(io_err(src))?.len();
        drop(f);
        let hash = hash_file(src).map_err(io_err(src))?;
        let ext = src.extension().and_then(|e| e.to_str()).unwrap_or("").to_string();
        let obj = ObjectRef { hash, ext, size };
        if matches!(self.verify_local(&obj), Verify::Ok) {
            let _ = fs::remove_file(src);
        } else {
            self.place(src, &obj)?;
        }
        self.upload(&obj)?;
        Ok(obj)
    }

    /// Checks an object's size and hash; one missing here is fetched from the remote, if any.
    pub fn verify(&self, obj: &ObjectRef) -> Verify {
        match self.verify_local(obj) {
            Verify::Missing => self.download(obj),
            v => v,
        }
    }

    /// Like [`Store::verify`], but an object only on the remote is checked by size, not fetched
    /// (its hash is checked when it is fetched): for `status`, and a Slurm driver whose jobs fetch
    /// their own inputs.
    pub fn verify_present(&self, obj: &ObjectRef) -> Verify {
        match (self.verify_local(obj), &self.remote) {
            (Verify::Missing, Some(r)) => match r.size(&Self::object_rel(obj)) {
                Ok(Some(size)) if size == obj.size => Verify::Ok,
                Ok(Some(size)) => Verify::Corrupt { actual: format!("{size} bytes instead of {} on the remote", obj.size) },
                Ok(None) => Verify::Missing,
                Err(e) => Verify::Unavailable(crate::error::render(&e)),
            },
            (v, _) => v,
        }
    }

    pub(super) fn verify_local(&self, obj: &ObjectRef) -> Verify {
        let path = self.object_path(obj);
        match fs::metadata(&path) {
            Err(_) => return Verify::Missing,
            Ok(m) if m.len() != obj.size => return Verify::Corrupt { actual: format!("{} bytes instead of {}", m.len(), obj.size) },
            Ok(_) => {}
        }
        match hash_file(&path) {
            Ok(h) if h == obj.hash => Verify::Ok,
            Ok(h) => Verify::Corrupt { actual: h },
            Err(_) => Verify::Missing,
        }
    }

    /// Moves a corrupt object aside so it is never used again; returns where it went.
    pub fn quarantine(&self, obj: &ObjectRef) -> Option<PathBuf> {
        let src = self.object_path(obj);
        let dest = self.path(Entry::Quarantined(&format!("{}.{}.{}", obj.hash, obj.ext, now() as u64)));
        fs::rename(&src, &dest).ok().map(|_| dest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_verify_corrupt_quarantine() {
        let dir = std::env::temp_dir().join(format!("pipe-store-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        let src = dir.join("x.txt");
        fs::write(&src, b"hello").unwrap();
        let obj = store.put_file(&src).unwrap();
        assert_eq!(obj.ext, "txt");
        assert!(matches!(store.verify(&obj), Verify::Ok));
        let path = store.object_path(&obj);
        let mut perms = fs::metadata(&path).unwrap().permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perms.set_readonly(false);
        fs::set_permissions(&path, perms).unwrap();
        fs::write(&path, b"hellp").unwrap();
        assert!(matches!(store.verify(&obj), Verify::Corrupt { .. }));
        assert!(store.quarantine(&obj).is_some());
        assert!(matches!(store.verify(&obj), Verify::Missing));
        fs::remove_dir_all(&dir).unwrap();
    }
}
