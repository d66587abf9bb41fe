//! The one error type of the compiled core. Every variant names the argument at fault,
//! so the bindings can turn it into a Python exception without adding context.

use std::fmt;

/// What went wrong, and with which argument.
#[derive(Debug, Clone, PartialEq)]
pub enum CoreError {
    /// An argument is out of its domain (non-finite, negative, wrong sign, …).
    Value { arg: &'static str, msg: String },
    /// An argument of a `Schedule` (building or evaluating one) is out of its domain.
    Schedule { arg: &'static str, msg: String },
    /// Array arguments whose shapes cannot be broadcast together.
    Shape { msg: String },
    /// A mean, minimum or similar was asked of an empty accumulator.
    Empty { msg: String },
    /// Valid arguments whose result does not fit in a float64; the message says which result.
    Overflow { msg: String },
}

impl CoreError {
    pub fn value(arg: &'static str, msg: impl Into<String>) -> Self {
        CoreError::Value { arg, msg: msg.into() }
    }

    pub fn schedule(arg: &'static str, msg: impl Into<String>) -> Self {
        CoreError::Schedule { arg, msg: msg.into() }
    }

    /// The same error, as a `Schedule`'s: a bad argument becomes a schedule's bad argument.
    pub fn in_schedule(self) -> Self {
        match self {
            CoreError::Value { arg, msg } => CoreError::Schedule { arg, msg },
            other => other,
        }
    }

    /// The argument named by the error, if it names one.
    pub fn arg(&self) -> Option<&'static str> {
        match self {
            CoreError::Value { arg, .. } | CoreError::Schedule { arg, .. } => Some(arg),
            _ => None,
        }
    }
}

impl fmt::Display for CoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CoreError::Value { arg, msg } | CoreError::Schedule { arg, msg } => write!(f, "{arg}: {msg}"),
            CoreError::Shape { msg } | CoreError::Empty { msg } | CoreError::Overflow { msg } => f.write_str(msg),
        }
    }
}

impl std::error::Error for CoreError {}

pub type Result<T> = std::result::Result<T, CoreError>;

/// `Ok(x)` when `x` is finite, else an error naming `arg`.
#[inline]
pub fn finite(arg: &'static str, x: f64) -> Result<f64> {
    if x.is_finite() {
        Ok(x)
    } else {
        Err(CoreError::value(arg, format!("expected a finite number, got {x:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_argument() {
        let e = finite("pct", f64::NAN).unwrap_err();
        assert_eq!(e.arg(), Some("pct"));
        assert!(e.to_string().starts_with("pct: expected a finite number"));
        assert_eq!(finite("start", 1.5), Ok(1.5));
    }

    #[test]
    fn large_floats_print_briefly() {
        assert_eq!(finite("x", f64::INFINITY).unwrap_err().to_string(), "x: expected a finite number, got inf");
        assert_eq!(format!("{:?}", 1e300), "1e300", "messages format floats with {{:?}}, not 301 digits");
    }
}
