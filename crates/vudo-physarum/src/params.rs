//! Model parameters and their flat `f64` array layout (the C-ABI passes parameters
//! as `n` doubles; index `k` below is array slot `k`; missing trailing slots keep
//! their defaults). Keep this table in sync with `ABI.md` and `python/vudo/physarum/params.py`.

/// Tube adaptation law `f(|Q|)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Model {
    /// `f = |Q|^mu` (Tero et al. 2007; mu = 1 gives shortest paths, Bonifaci et al. 2012).
    Power,
    /// `f = |Q|^gamma / (1 + |Q|^gamma)` (Tero et al. 2010).
    Sigmoid,
}

/// How food sources inject and drain the total flux `i0` each step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// `food[0]` is the source (+i0), `food[1]` the sink (-i0), every step.
    Pair,
    /// Each step a random source and a distinct random sink among the food.
    RandomPair,
    /// Each step one random food source (+i0), all other food are sinks (-i0/(k-1)).
    OneToAll,
}

use crate::solver::Precond;

pub const P_MODEL: usize = 0;
pub const P_MU: usize = 1;
pub const P_GAMMA: usize = 2;
pub const P_I0: usize = 3;
pub const P_DECAY: usize = 4;
pub const P_DT: usize = 5;
pub const P_SCHEME: usize = 6;
pub const P_PRUNE_THRESHOLD: usize = 7;
pub const P_GROWTH_RATE: usize = 8;
pub const P_MIN_THICKNESS: usize = 9;
pub const P_MAX_THICKNESS: usize = 10;
pub const P_EXPLORATION_PROBABILITY: usize = 11;
pub const P_STEP_SIZE: usize = 12;
pub const P_INITIAL_THICKNESS: usize = 13;
pub const P_CG_TOL: usize = 14;
pub const P_CG_MAX_ITER: usize = 15;
pub const P_SYNC_STRENGTH: usize = 16;
pub const P_OSC_FREQUENCY: usize = 17;
pub const P_NUTRIENT_DECAY: usize = 18;
pub const P_MAX_CELLS: usize = 19;
pub const P_INITIAL_CONDUCTIVITY: usize = 20;
pub const P_CG_PRECOND: usize = 21;
/// Number of parameter slots understood by this version of the kernel.
pub const N_PARAMS: usize = 22;

#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    pub model: Model,
    pub mu: f64,
    pub gamma: f64,
    pub i0: f64,
    pub decay: f64,
    pub dt: f64,
    /// `None` = automatic: `Pair` with exactly two food sources, else `OneToAll`.
    pub scheme: Option<Scheme>,
    /// Tubes whose radius falls below this are removed.
    pub prune_threshold: f64,
    pub growth_rate: f64,
    pub min_thickness: f64,
    pub max_thickness: f64,
    pub exploration_probability: f64,
    pub step_size: f64,
    pub initial_thickness: f64,
    pub cg_tol: f64,
    pub cg_max_iter: usize,
    pub sync_strength: f64,
    pub osc_frequency: f64,
    pub nutrient_decay: f64,
    pub max_cells: usize,
    /// Conductivity of the tubes of the input graph at t = 0.
    pub initial_conductivity: f64,
    /// Pressure solver (slot 21: 0 = CG + Jacobi, 1 = CG + IC(0), 2 = CG +
    /// modified IC(0), 3 = sparse Cholesky).
    pub cg_precond: Precond,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            model: Model::Power,
            mu: 1.0,
            gamma: 1.8,
            i0: 1.0,
            decay: 1.0,
            dt: 0.5,
            scheme: None,
            prune_threshold: 1e-3,
            growth_rate: 1.0,
            min_thickness: 0.0,
            max_thickness: 100.0,
            exploration_probability: 0.0,
            step_size: 1.0,
            initial_thickness: 0.5,
            cg_tol: 1e-12,
            cg_max_iter: 20_000,
            sync_strength: 0.5,
            osc_frequency: 1.0,
            nutrient_decay: 0.05,
            max_cells: 100_000,
            initial_conductivity: 1.0,
            cg_precond: Precond::Cholesky,
        }
    }
}

fn finite(name: &str, v: f64) -> Result<f64, String> {
    if v.is_finite() {
        Ok(v)
    } else {
        Err(format!("parameter {name} must be finite, got {v}"))
    }
}

impl Params {
    /// Decode the flat parameter array. Slots beyond `values.len()` keep defaults;
    /// a NaN in a slot also means "default".
    pub fn from_slice(values: &[f64]) -> Result<Params, String> {
        if values.len() > N_PARAMS {
            return Err(format!("expected at most {N_PARAMS} parameters, got {}", values.len()));
        }
        let mut p = Params::default();
        let get = |k: usize| values.get(k).copied().filter(|v| !v.is_nan());
        if let Some(v) = get(P_MODEL) {
            p.model = match v as i64 {
                0 => Model::Power,
                1 => Model::Sigmoid,
                _ => return Err(format!("parameter model must be 0 (power) or 1 (sigmoid), got {v}")),
            };
        }
        if let Some(v) = get(P_CG_PRECOND) {
            p.cg_precond = match v as i64 {
                0 => Precond::Jacobi,
                1 => Precond::Ic0,
                2 => Precond::Mic0,
                3 => Precond::Cholesky,
                _ => {
                    return Err(format!(
                        "parameter cg_precond must be 0 (jacobi), 1 (ic0), 2 (mic0) or 3 (cholesky), got {v}"
                    ))
                }
            };
        }
        if let Some(v) = get(P_SCHEME) {
            p.scheme = match v as i64 {
                -1 => None,
                0 => Some(Scheme::Pair),
                1 => Some(Scheme::RandomPair),
                2 => Some(Scheme::OneToAll),
                _ => return Err(format!("parameter scheme must be -1 (auto), 0, 1 or 2, got {v}")),
            };
        }
        let set = |k: usize, name: &str, slot: &mut f64| -> Result<(), String> {
            if let Some(v) = get(k) {
                *slot = finite(name, v)?;
            }
            Ok(())
        };
        set(P_MU, "mu", &mut p.mu)?;
        set(P_GAMMA, "gamma", &mut p.gamma)?;
        set(P_I0, "i0", &mut p.i0)?;
        set(P_DECAY, "decay", &mut p.decay)?;
        set(P_DT, "dt", &mut p.dt)?;
        set(P_PRUNE_THRESHOLD, "prune_threshold", &mut p.prune_threshold)?;
        set(P_GROWTH_RATE, "growth_rate", &mut p.growth_rate)?;
        set(P_MIN_THICKNESS, "min_thickness", &mut p.min_thickness)?;
        set(P_MAX_THICKNESS, "max_thickness", &mut p.max_thickness)?;
        set(P_EXPLORATION_PROBABILITY, "exploration_probability", &mut p.exploration_probability)?;
        set(P_STEP_SIZE, "step_size", &mut p.step_size)?;
        set(P_INITIAL_THICKNESS, "initial_thickness", &mut p.initial_thickness)?;
        set(P_CG_TOL, "cg_tol", &mut p.cg_tol)?;
        set(P_SYNC_STRENGTH, "sync_strength", &mut p.sync_strength)?;
        set(P_OSC_FREQUENCY, "osc_frequency", &mut p.osc_frequency)?;
        set(P_NUTRIENT_DECAY, "nutrient_decay", &mut p.nutrient_decay)?;
        set(P_INITIAL_CONDUCTIVITY, "initial_conductivity", &mut p.initial_conductivity)?;
        let mut iter = p.cg_max_iter as f64;
        set(P_CG_MAX_ITER, "cg_max_iter", &mut iter)?;
        let mut cells = p.max_cells as f64;
        set(P_MAX_CELLS, "max_cells", &mut cells)?;
        if !(1.0..=1e7).contains(&iter) {
            return Err(format!("parameter cg_max_iter must be in [1, 1e7], got {iter}"));
        }
        if !(0.0..=1e7).contains(&cells) {
            return Err(format!("parameter max_cells must be in [0, 1e7], got {cells}"));
        }
        p.cg_max_iter = iter as usize;
        p.max_cells = cells as usize;
        p.validate()?;
        Ok(p)
    }

    pub fn validate(&self) -> Result<(), String> {
        let pos = |name: &str, v: f64| {
            if v > 0.0 { Ok(()) } else { Err(format!("parameter {name} must be > 0, got {v}")) }
        };
        let nonneg = |name: &str, v: f64| {
            if v >= 0.0 { Ok(()) } else { Err(format!("parameter {name} must be >= 0, got {v}")) }
        };
        pos("mu", self.mu)?;
        pos("gamma", self.gamma)?;
        pos("i0", self.i0)?;
        nonneg("decay", self.decay)?;
        pos("dt", self.dt)?;
        if self.dt * self.decay > 1.0 {
            return Err(format!(
                "dt * decay must be <= 1 for a stable explicit step, got {}",
                self.dt * self.decay
            ));
        }
        nonneg("prune_threshold", self.prune_threshold)?;
        nonneg("growth_rate", self.growth_rate)?;
        nonneg("min_thickness", self.min_thickness)?;
        pos("max_thickness", self.max_thickness)?;
        if self.min_thickness > self.max_thickness {
            return Err("parameter min_thickness must be <= max_thickness".into());
        }
        if !(0.0..=1.0).contains(&self.exploration_probability) {
            return Err(format!(
                "parameter exploration_probability must be in [0, 1], got {}",
                self.exploration_probability
            ));
        }
        pos("step_size", self.step_size)?;
        pos("initial_thickness", self.initial_thickness)?;
        pos("cg_tol", self.cg_tol)?;
        nonneg("sync_strength", self.sync_strength)?;
        nonneg("nutrient_decay", self.nutrient_decay)?;
        pos("initial_conductivity", self.initial_conductivity)?;
        Ok(())
    }

    /// The scheme actually used for `n_food` food sources.
    pub fn effective_scheme(&self, n_food: usize) -> Scheme {
        match self.scheme {
            Some(s) => s,
            None if n_food == 2 => Scheme::Pair,
            None => Scheme::OneToAll,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_slice_gives_defaults() {
        assert_eq!(Params::from_slice(&[]).unwrap(), Params::default());
    }

    #[test]
    fn nan_means_default_and_bad_values_are_named() {
        let mut v = vec![f64::NAN; N_PARAMS];
        v[P_MU] = 2.0;
        let p = Params::from_slice(&v).unwrap();
        assert_eq!(p.mu, 2.0);
        assert_eq!(p.gamma, Params::default().gamma);
        v[P_I0] = -1.0;
        let e = Params::from_slice(&v).unwrap_err();
        assert!(e.contains("i0"), "{e}");
        assert!(Params::from_slice(&[5.0]).unwrap_err().contains("model"));
    }
}
