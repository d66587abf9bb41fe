//! Fallible allocation: a result too large for memory is an error naming the argument
//! that asked for it, never an abort of the whole process.

use std::alloc::{alloc_zeroed, Layout};

use super::error::{CoreError, Result};

/// An empty vector with room for `len` floats.
pub fn with_capacity(arg: &'static str, len: usize) -> Result<Vec<f64>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len)
        .map_err(|_| CoreError::value(arg, format!("asks for {len} values, which do not fit in memory")))?;
    Ok(v)
}

/// `len` zeros, from zeroed memory as `vec![0.0; len]` gets it (large blocks come as fresh
/// pages from the OS, zeroed lazily: no pass over the memory before the caller's own).
pub fn zeros(arg: &'static str, len: usize) -> Result<Vec<f64>> {
    let too_large = || CoreError::value(arg, format!("asks for {len} values, which do not fit in memory"));
    if len == 0 {
        return Ok(Vec::new());
    }
    let layout = Layout::array::<f64>(len).map_err(|_| too_large())?;
    // SAFETY: the layout's size is not zero; all-zero bits are a valid f64 (0.0); the vector
    // takes the block with the global allocator's layout for `len` f64s, as it would allocate it.
    let ptr = unsafe { alloc_zeroed(layout) }.cast::<f64>();
    if ptr.is_null() {
        return Err(too_large());
    }
    advise_huge_pages(ptr.cast(), layout.size());
    Ok(unsafe { Vec::from_raw_parts(ptr, len, len) })
}

/// Asks Linux to back a large block with transparent huge pages, as NumPy does for its
/// arrays: writing a long result otherwise costs one page fault per 4 KiB. Only advice.
#[cfg(target_os = "linux")]
fn advise_huge_pages(ptr: *mut u8, size: usize) {
    const MIN: usize = 4 << 20;
    const PAGE: usize = 4096;
    if size < MIN {
        return;
    }
    // madvise takes a page-aligned start; the block's own pages start at most a page in.
    let offset = (PAGE - ptr as usize % PAGE) % PAGE;
    // SAFETY: the range lies inside the block just allocated; MADV_HUGEPAGE changes no
    // contents, and its failure (e.g. no THP support) is harmless, so it is ignored.
    unsafe { libc::madvise(ptr.add(offset).cast(), size - offset, libc::MADV_HUGEPAGE) };
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages(_ptr: *mut u8, _size: usize) {}

/// The number of elements of `shape`, or an error when it overflows.
pub fn element_count(arg: &'static str, shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| CoreError::value(arg, format!("the shape {shape:?} has too many elements")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_large_is_an_error_naming_the_argument() {
        assert_eq!(zeros("k", usize::MAX / 4).unwrap_err().arg(), Some("k"));
        assert_eq!(element_count("pct", &[usize::MAX, 3]).unwrap_err().arg(), Some("pct"));
        assert_eq!(zeros("k", 3).unwrap(), vec![0.0; 3]);
        assert_eq!(element_count("pct", &[2, 3]).unwrap(), 6);
    }
}
