//! t-SNE (van der Maaten 2014, Barnes-Hut) of latent codes, through the `bhtsne` crate, started
//! from a seeded initial embedding so a given seed always starts the same way.

use crate::rng::Rng;
use crate::{Error, Result};

#[derive(Clone, Debug)]
pub struct TsneConfig {
    pub perplexity: f32,
    pub theta: f32,
    pub epochs: usize,
    pub seed: u64,
}

/// Embeds `n` points of dimension `d` (row-major `data`) into 2-D.
pub fn embed(data: &[f32], d: usize, cfg: &TsneConfig) -> Result<Vec<[f32; 2]>> {
    if d == 0 || !data.len().is_multiple_of(d) {
        return Err(Error::Data(format!("t-SNE: {} values are not rows of {d}", data.len())));
    }
    let n = data.len() / d;
    if n < 5 {
        return Err(Error::Data(format!("t-SNE needs at least 5 points, got {n}")));
    }
    // bhtsne needs n - 1 >= 3 * perplexity.
    let perplexity = cfg.perplexity.min(((n - 1) as f32 / 3.0).floor()).max(1.0);
    let samples: Vec<&[f32]> = data.chunks(d).collect();
    let mut rng = Rng::new(cfg.seed);
    let init: Vec<f32> = (0..n * 2)
        .map(|_| {
            // Box-Muller, scale 1e-4 as in the reference implementation.
            let (u1, u2) = (rng.uniform().max(1e-12), rng.uniform());
            ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos() * 1e-4) as f32
        })
        .collect();
    let mut tsne = bhtsne::tSNE::<f32, &[f32], 2>::new(&samples);
    tsne.perplexity(perplexity).epochs(cfg.epochs).initial_embedding(init);
    tsne.barnes_hut(cfg.theta, |a, b| a.iter().zip(b.iter()).map(|(x, y)| (x - y).powi(2)).sum::<f32>().sqrt());
    let flat = tsne.embedding();
    Ok(flat.chunks(2).map(|p| [p[0], p[1]]).collect())
}
