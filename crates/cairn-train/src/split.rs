//! A seeded shuffle of row indices into training, validation and test rows: the same seed gives
//! the same split on every machine.

/// SplitMix64: a small generator whose output is fixed by its seed.
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0), without modulo bias worth measuring for row counts.
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}

/// Rows of each part of a split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub train: Vec<usize>,
    pub validation: Vec<usize>,
    pub test: Vec<usize>,
}

/// Shuffles `0..rows` with `seed` and cuts it: the first `test_fraction` of the rows for test,
/// the next `validation_fraction` for validation, the rest for training (each part keeps its
/// rows in file order).
pub fn split(rows: usize, seed: u64, validation_fraction: f64, test_fraction: f64) -> Split {
    let mut order: Vec<usize> = (0..rows).collect();
    let mut rng = SplitMix64::new(seed);
    for i in (1..rows).rev() {
        let j = rng.below(i + 1);
        order.swap(i, j);
    }
    let test = ((rows as f64) * test_fraction).round() as usize;
    let validation = ((rows as f64) * validation_fraction).round() as usize;
    let mut parts = [
        order[..test.min(rows)].to_vec(),
        order[test.min(rows)..(test + validation).min(rows)].to_vec(),
        order[(test + validation).min(rows)..].to_vec(),
    ];
    for part in &mut parts {
        part.sort_unstable();
    }
    let [test, validation, train] = parts;
    Split {
        train,
        validation,
        test,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_split_is_fixed_by_its_seed_and_covers_every_row_once() {
        let a = split(1000, 42, 0.2, 0.2);
        assert_eq!(a, split(1000, 42, 0.2, 0.2));
        assert_ne!(a, split(1000, 43, 0.2, 0.2));
        assert_eq!(
            (a.train.len(), a.validation.len(), a.test.len()),
            (600, 200, 200)
        );
        let mut all: Vec<usize> = a
            .train
            .iter()
            .chain(&a.validation)
            .chain(&a.test)
            .copied()
            .collect();
        all.sort_unstable();
        assert_eq!(all, (0..1000).collect::<Vec<_>>());
        // The first values of the generator, pinned so a change to it is noticed.
        let mut g = SplitMix64::new(0);
        assert_eq!(g.next_u64(), 0xe220_a839_7b1d_cdaf);
    }
}
