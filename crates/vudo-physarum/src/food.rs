//! Food sources: the right-hand side `b` of the Kirchhoff system for one step.
//! A scheme picks which food cells inject (+) and drain (−) the total flux I0;
//! then `b` is projected so that it sums to zero on every connected component
//! (a component holding only a source, or only sinks, carries no flow).

use crate::params::Scheme;
use crate::rng::Rng;

/// Fill `b` (len = number of cells) for this step. Returns the source cell, if any.
pub fn fill_sources(
    scheme: Scheme,
    food: &[u32],
    i0: f64,
    rng: &mut Rng,
    b: &mut [f64],
) -> Option<u32> {
    for v in b.iter_mut() {
        *v = 0.0;
    }
    let k = food.len();
    if k < 2 {
        return None;
    }
    match scheme {
        Scheme::Pair => {
            b[food[0] as usize] += i0;
            b[food[1] as usize] -= i0;
            Some(food[0])
        }
        Scheme::RandomPair => {
            let s = rng.below(k);
            let mut t = rng.below(k - 1);
            if t >= s {
                t += 1;
            }
            b[food[s] as usize] += i0;
            b[food[t] as usize] -= i0;
            Some(food[s])
        }
        Scheme::OneToAll => {
            let s = rng.below(k);
            let share = i0 / (k - 1) as f64;
            for (j, &f) in food.iter().enumerate() {
                if j == s {
                    b[f as usize] += i0;
                } else {
                    b[f as usize] -= share;
                }
            }
            Some(food[s])
        }
    }
}

/// Make `b` sum to zero on each component (`comp[i]` = component label, a cell
/// id) by spreading each component's imbalance evenly over its food cells with
/// a nonzero entry. Components without any such cell get b = 0.
pub fn balance_components(comp: &[u32], food: &[u32], b: &mut [f64]) {
    let n = b.len();
    let mut sum = vec![0.0; n];
    let mut count = vec![0u32; n];
    for &f in food {
        let f = f as usize;
        if b[f] != 0.0 {
            sum[comp[f] as usize] += b[f];
            count[comp[f] as usize] += 1;
        }
    }
    for &f in food {
        let f = f as usize;
        if b[f] != 0.0 {
            let c = comp[f] as usize;
            b[f] -= sum[c] / count[c] as f64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_to_all_sums_to_zero() {
        let mut b = vec![0.0; 5];
        let mut rng = Rng::new(1);
        fill_sources(Scheme::OneToAll, &[0, 2, 4], 2.0, &mut rng, &mut b);
        assert!(b.iter().sum::<f64>().abs() < 1e-15);
        assert_eq!(b.iter().filter(|v| **v > 0.0).count(), 1);
    }

    #[test]
    fn isolated_source_gets_no_flux() {
        // cells 0,1 connected (comp 0); cell 2 alone (comp 2).
        let comp = [0, 0, 2];
        let mut b = vec![1.0, 0.0, -1.0];
        balance_components(&comp, &[0, 2], &mut b);
        assert_eq!(b, vec![0.0, 0.0, 0.0]);
    }
}
