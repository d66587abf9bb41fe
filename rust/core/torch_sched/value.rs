//! A number as torch's scheduler arithmetic holds it: a Python float, or a 0-dim float64 or
//! float32 tensor (a tensor learning rate, a base learning rate cloned from one).
//!
//! Torch's `get_lr` runs the same expression for both; with a tensor the operations are
//! tensor operations, so they follow torch's type promotion: a Python float meeting a
//! float32 tensor is first rounded to float32 and the operation is done in float32
//! (`opmath` of float32 is float32, on CPU), two tensors promote to the wider dtype. An
//! f32 operation is computed here in f64 and rounded once, which gives the correctly
//! rounded f32 result for `+ - * /` (the double rounding is innocuous at 53 >= 2·24 + 2 bits).
//! With Python floats only, every operation is the plain f64 one, in the same order.

use std::ops::{Add, Div, Mul, Sub};

/// How a value is held: its dtype when it is a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A Python float (or int): f64 arithmetic, and a "wrapped number" next to a tensor.
    Float,
    /// A float64 tensor.
    F64,
    /// A float32 tensor.
    F32,
}

impl Kind {
    /// `x` rounded to what this kind holds.
    #[inline]
    pub fn round(self, x: f64) -> f64 {
        match self {
            Kind::F32 => x as f32 as f64,
            _ => x,
        }
    }

    /// The kind of a binary operation's result (torch's promotion of 0-dim operands).
    #[inline]
    fn join(self, other: Kind) -> Kind {
        match (self, other) {
            (Kind::Float, k) | (k, Kind::Float) => k,
            (Kind::F64, _) | (_, Kind::F64) => Kind::F64,
            _ => Kind::F32,
        }
    }
}

/// A value and how torch holds it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Val {
    pub x: f64,
    pub kind: Kind,
}

impl Val {
    /// A Python float.
    #[inline]
    pub const fn float(x: f64) -> Self {
        Val { x, kind: Kind::Float }
    }

    /// `x` held as `kind` (rounded to it).
    #[inline]
    pub fn new(x: f64, kind: Kind) -> Self {
        Val { x: kind.round(x), kind }
    }

    #[inline]
    fn op(self, other: Val, f: impl Fn(f64, f64) -> f64) -> Val {
        let kind = self.kind.join(other.kind);
        Val { x: kind.round(f(kind.round(self.x), kind.round(other.x))), kind }
    }
}

macro_rules! binary {
    ($trait:ident, $method:ident, $op:tt) => {
        impl $trait for Val {
            type Output = Val;
            #[inline]
            fn $method(self, other: Val) -> Val {
                self.op(other, |a, b| a $op b)
            }
        }
        impl $trait<f64> for Val {
            type Output = Val;
            #[inline]
            fn $method(self, other: f64) -> Val {
                self.op(Val::float(other), |a, b| a $op b)
            }
        }
        impl $trait<Val> for f64 {
            type Output = Val;
            #[inline]
            fn $method(self, other: Val) -> Val {
                Val::float(self).op(other, |a, b| a $op b)
            }
        }
    };
}

binary!(Add, add, +);
binary!(Sub, sub, -);
binary!(Mul, mul, *);
binary!(Div, div, /);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_are_plain_f64() {
        let (a, b) = (0.1, 0.7);
        assert_eq!((Val::float(a) * b).x.to_bits(), (a * b).to_bits());
        assert_eq!((b - Val::float(a)).x.to_bits(), (b - a).to_bits());
        assert_eq!((Val::float(a) / Val::float(b)).kind, Kind::Float);
    }

    #[test]
    fn a_float_meeting_an_f32_tensor_is_rounded_first() {
        let t = Val::new(0.1, Kind::F32);
        let got = t * 0.7;
        assert_eq!(got.kind, Kind::F32);
        assert_eq!(got.x, (0.1f32 * 0.7f32) as f64);
        assert_eq!((0.3 - t).x, (0.3f32 - 0.1f32) as f64);
        // two tensors promote to the wider one
        let w = t * Val::new(0.7, Kind::F64);
        assert_eq!(w.kind, Kind::F64);
        assert_eq!(w.x, 0.1f32 as f64 * 0.7);
    }
}
