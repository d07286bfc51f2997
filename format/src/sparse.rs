//! Block-sparse int8 weight matrices (layout `BlockSparse`, format 1.2).
//!
//! An `N x K` matrix (rows: output channels; columns: the reduction in the order of the unpacked
//! tensor's memory, `kh, kw, c` for a convolution, as for `Packed`) is cut into blocks of `br`
//! rows by `bc` consecutive columns, and only the blocks holding a non-zero weight are stored.
//! The tensor's bytes are, little-endian:
//!
//! - `row_ptr: [u32; nrb + 1]`, `nrb = ceil(N / br)`: the blocks of block-row `i` are
//!   `row_ptr[i] .. row_ptr[i + 1]`; `row_ptr[0] = 0`, non-decreasing, `row_ptr[nrb] = nnzb`;
//! - `cols: [u16; nnzb]`: each block's column in blocks (`< ceil(K / bc)`), strictly increasing
//!   within a block-row;
//! - zero bytes up to a multiple of 64 from the tensor's start (so the values are as aligned as
//!   the tensor);
//! - `values: [i8; nnzb * br * bc]`: each block row by row (`[br][bc]`); entries past `N` or `K`
//!   are zero.
//!
//! The size grows with the number of non-zero blocks: `align64(4 (nrb + 1) + 2 nnzb) + nnzb br bc`
//! bytes. With `br = 16, bc = 4` one block is one 64-byte vector of 16 output channels by 4
//! reduction steps: a `vpdpbusd` on zmm, two on ymm, four `sdot` on NEON.
//!
//! [`BlockSparse::parse`] validates everything a kernel relies on (a pass over the indices, not
//! the values), so kernels may index with the stored columns unchecked.

use crate::layout::Pack;

/// Block shape of the SIMD sparse kernels: 16 output channels by 4 reduction steps.
pub const KERNEL_BLOCK: Pack = Pack { nr: 16, kr: 4 };

/// Bytes of an encoding with `nnzb` stored blocks, `None` on overflow.
pub fn encoded_len(n: usize, block: Pack, nnzb: usize) -> Option<usize> {
    let nrb = n.div_ceil(block.nr);
    let index = nrb.checked_add(1)?.checked_mul(4)?.checked_add(nnzb.checked_mul(2)?)?;
    index.div_ceil(64).checked_mul(64)?.checked_add(nnzb.checked_mul(block.nr * block.kr)?)
}

/// A validated block-sparse matrix, viewed in place.
#[derive(Clone, Copy, Debug)]
pub struct BlockSparse<'a> {
    pub n: usize,
    pub k: usize,
    pub block: Pack,
    row_ptr: &'a [u32],
    cols: &'a [u16],
    values: &'a [i8],
}

impl<'a> BlockSparse<'a> {
    /// Check `bytes` as the encoding of an `n x k` matrix of `block`s and view it.
    ///
    /// `bytes` must start at a 4-byte aligned address (constants sit at multiples of 64 from a
    /// 4-byte aligned WEIGHTS section).
    pub fn parse(bytes: &'a [u8], n: usize, k: usize, block: Pack) -> Result<Self, &'static str> {
        let nrb = n.div_ceil(block.nr);
        let kb = k.div_ceil(block.kr);
        if kb > u16::MAX as usize + 1 {
            return Err("block-sparse matrix wider than 65536 blocks");
        }
        if !(bytes.as_ptr() as usize).is_multiple_of(4) {
            return Err("block-sparse data not 4-byte aligned");
        }
        let ptr_len = (nrb + 1).checked_mul(4).ok_or("block-sparse index overflows")?;
        let ptr_bytes = bytes.get(..ptr_len).ok_or("block-sparse data shorter than its row index")?;
        // SAFETY: 4-byte aligned (checked), `ptr_len = 4 (nrb + 1)` bytes; every bit pattern is a u32.
        let row_ptr: &[u32] = unsafe { core::slice::from_raw_parts(ptr_bytes.as_ptr().cast(), nrb + 1) };
        if row_ptr[0] != 0 || row_ptr.windows(2).any(|w| w[1] < w[0]) {
            return Err("block-sparse row index not increasing from 0");
        }
        let nnzb = row_ptr[nrb] as usize;
        if encoded_len(n, block, nnzb) != Some(bytes.len()) {
            return Err("block-sparse data size does not match its block count");
        }
        let col_bytes = &bytes[ptr_len..ptr_len + 2 * nnzb];
        // SAFETY: `ptr_len` is a multiple of 4, so the column list is 2-byte aligned; `2 nnzb` bytes.
        let cols: &[u16] = unsafe { core::slice::from_raw_parts(col_bytes.as_ptr().cast(), nnzb) };
        for rb in 0..nrb {
            let row = &cols[row_ptr[rb] as usize..row_ptr[rb + 1] as usize];
            if row.windows(2).any(|w| w[1] <= w[0]) || row.last().is_some_and(|&c| c as usize >= kb) {
                return Err("block-sparse columns not increasing or outside the matrix");
            }
        }
        let start = bytes.len() - nnzb * block.nr * block.kr;
        // SAFETY: i8 has the layout of u8.
        let values: &[i8] = unsafe { core::slice::from_raw_parts(bytes[start..].as_ptr().cast(), bytes.len() - start) };
        // Rows and columns past N and K are zero (kernels that multiply them must agree with the
        // ones that skip them): only the last block-row and the last block column have any.
        for rb in 0..nrb {
            for (j, &c) in cols[row_ptr[rb] as usize..row_ptr[rb + 1] as usize].iter().enumerate() {
                let (r0, c0) = (rb * block.nr, c as usize * block.kr);
                if r0 + block.nr <= n && c0 + block.kr <= k {
                    continue;
                }
                let b = &values[(row_ptr[rb] as usize + j) * block.nr * block.kr..][..block.nr * block.kr];
                for (i, &v) in b.iter().enumerate() {
                    if v != 0 && (r0 + i / block.kr >= n || c0 + i % block.kr >= k) {
                        return Err("block-sparse block has a non-zero value past N rows or K columns");
                    }
                }
            }
        }
        Ok(BlockSparse { n, k, block, row_ptr, cols, values })
    }

    /// View an encoding that [`BlockSparse::parse`] accepted (as the reader does for every
    /// block-sparse constant at load), in O(1): nothing is checked again. On bytes that were
    /// never checked it may panic, and kernels given such a view may read out of bounds.
    pub fn view(bytes: &'a [u8], n: usize, k: usize, block: Pack) -> Self {
        let nrb = n.div_ceil(block.nr);
        assert!((bytes.as_ptr() as usize).is_multiple_of(4) && bytes.len() >= 4 * (nrb + 1));
        // SAFETY: aligned and long enough (asserted); every bit pattern is a u32.
        let row_ptr: &[u32] = unsafe { core::slice::from_raw_parts(bytes.as_ptr().cast(), nrb + 1) };
        let nnzb = row_ptr[nrb] as usize;
        let col_bytes = &bytes[4 * (nrb + 1)..][..2 * nnzb];
        // SAFETY: 2-byte aligned (4 (nrb + 1) from a 4-aligned start), `2 nnzb` bytes.
        let cols: &[u16] = unsafe { core::slice::from_raw_parts(col_bytes.as_ptr().cast(), nnzb) };
        let tail = &bytes[bytes.len() - nnzb * block.nr * block.kr..];
        // SAFETY: i8 has the layout of u8.
        let values: &[i8] = unsafe { core::slice::from_raw_parts(tail.as_ptr().cast(), tail.len()) };
        BlockSparse { n, k, block, row_ptr, cols, values }
    }

    /// Block-rows (`ceil(n / br)`).
    #[inline(always)]
    pub fn block_rows(&self) -> usize {
        self.row_ptr.len() - 1
    }
    /// Stored blocks.
    #[inline(always)]
    pub fn stored_blocks(&self) -> usize {
        self.cols.len()
    }
    /// The stored blocks of block-row `rb`.
    #[inline(always)]
    pub fn blocks(&self, rb: usize) -> core::ops::Range<usize> {
        self.row_ptr[rb] as usize..self.row_ptr[rb + 1] as usize
    }
    /// Columns (in blocks) of every stored block.
    #[inline(always)]
    pub fn cols(&self) -> &'a [u16] {
        self.cols
    }
    /// Values of every stored block, `[nnzb][br][bc]`.
    #[inline(always)]
    pub fn values(&self) -> &'a [i8] {
        self.values
    }
    /// Fraction of the blocks that are stored.
    pub fn density(&self) -> f64 {
        let all = self.block_rows() * self.k.div_ceil(self.block.kr);
        self.stored_blocks() as f64 / all.max(1) as f64
    }
    /// Element `(row, col)` (zero when its block is not stored).
    pub fn get(&self, row: usize, col: usize) -> i8 {
        let (rb, cb) = (row / self.block.nr, (col / self.block.kr) as u16);
        let range = self.blocks(rb);
        match self.cols[range.clone()].binary_search(&cb) {
            Ok(i) => {
                let b = range.start + i;
                self.values[(b * self.block.nr + row % self.block.nr) * self.block.kr + col % self.block.kr]
            }
            Err(_) => 0,
        }
    }
}

/// Encode a row-major `n x k` matrix: every block with a non-zero weight is stored.
#[cfg(feature = "std")]
pub fn encode(block: Pack, n: usize, k: usize, m: &[i8]) -> std::vec::Vec<u8> {
    use std::vec::Vec;
    assert_eq!(m.len(), n * k, "matrix size");
    let (nrb, kb) = (n.div_ceil(block.nr), k.div_ceil(block.kr));
    let (mut row_ptr, mut cols, mut values) = (Vec::with_capacity(nrb + 1), Vec::new(), Vec::new());
    row_ptr.push(0u32);
    for rb in 0..nrb {
        for cb in 0..kb {
            let at = |r: usize, c: usize| {
                let (row, col) = (rb * block.nr + r, cb * block.kr + c);
                if row < n && col < k {
                    m[row * k + col]
                } else {
                    0
                }
            };
            if (0..block.nr).any(|r| (0..block.kr).any(|c| at(r, c) != 0)) {
                cols.push(cb as u16);
                for r in 0..block.nr {
                    values.extend((0..block.kr).map(|c| at(r, c) as u8));
                }
            }
        }
        row_ptr.push(cols.len() as u32);
    }
    let mut out = Vec::with_capacity(encoded_len(n, block, cols.len()).unwrap_or(0));
    for p in &row_ptr {
        out.extend_from_slice(&p.to_le_bytes());
    }
    for c in &cols {
        out.extend_from_slice(&c.to_le_bytes());
    }
    out.resize(out.len().div_ceil(64) * 64, 0);
    out.extend_from_slice(&values);
    out
}

/// Fraction of the `block`s of a row-major `n x k` matrix that hold a non-zero weight.
pub fn block_density(block: Pack, n: usize, k: usize, m: &[i8]) -> f64 {
    let (nrb, kb) = (n.div_ceil(block.nr), k.div_ceil(block.kr));
    let mut stored = 0usize;
    for rb in 0..nrb {
        for cb in 0..kb {
            let rows = rb * block.nr..(rb * block.nr + block.nr).min(n);
            let cols = cb * block.kr..(cb * block.kr + block.kr).min(k);
            if rows.clone().any(|r| m[r * k + cols.start..r * k + cols.end].iter().any(|&v| v != 0)) {
                stored += 1;
            }
        }
    }
    stored as f64 / (nrb * kb).max(1) as f64
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use std::vec::Vec;

    /// A 64-byte aligned copy (as constants sit in a file).
    fn aligned(b: &[u8]) -> Vec<u64> {
        let mut v = std::vec![0u64; b.len().div_ceil(8)];
        // SAFETY: `v` holds at least `b.len()` bytes.
        unsafe { core::ptr::copy_nonoverlapping(b.as_ptr(), v.as_mut_ptr().cast::<u8>(), b.len()) };
        v
    }
    fn bytes(v: &[u64], len: usize) -> &[u8] {
        // SAFETY: `v` holds at least `len` bytes.
        unsafe { core::slice::from_raw_parts(v.as_ptr().cast(), len) }
    }

    /// A value in the padding of the last block-row or block column (past N or K) is refused;
    /// packed panels likewise.
    #[test]
    fn padding_past_n_and_k_must_be_zero() {
        let (n, k) = (5, 6);
        let m: Vec<i8> = (0..n * k).map(|i| (i % 9) as i8 - 4).collect();
        let block = Pack { nr: 4, kr: 4 };
        let enc = encode(block, n, k, &m);
        let store = aligned(&enc);
        assert!(BlockSparse::parse(bytes(&store, enc.len()), n, k, block).is_ok());
        // The last stored block holds row 4 (the last real one) and columns 4..8: entry (0, 3) is
        // column 7, past K; entry (1, 0) is row 5, past N.
        for at in [3, 4] {
            let mut bad = enc.clone();
            let last = bad.len() - 16;
            bad[last + at] = 1;
            let store = aligned(&bad);
            let err = BlockSparse::parse(bytes(&store, bad.len()), n, k, block).err();
            assert_eq!(err, Some("block-sparse block has a non-zero value past N rows or K columns"), "entry {at}");
        }
        let p = Pack { nr: 8, kr: 4 };
        let mut packed: Vec<u8> = p.pack(n, k, &m).into_iter().map(|v| v as u8).collect();
        assert!(p.padding_is_zero(&packed, n, k, 1));
        packed[p.index(k, 2, 7)] = 1;
        assert!(!p.padding_is_zero(&packed, n, k, 1));
        packed[p.index(k, 2, 7)] = 0;
        packed[p.index(k, 6, 0)] = 1;
        assert!(!p.padding_is_zero(&packed, n, k, 1));
    }

    #[test]
    fn round_trip_and_density() {
        let (n, k) = (37, 23);
        let mut m = std::vec![0i8; n * k];
        for (i, v) in m.iter_mut().enumerate() {
            if i % 7 == 0 || i % 11 == 3 {
                *v = ((i % 255) as i32 - 127) as i8;
            }
        }
        for block in [KERNEL_BLOCK, Pack { nr: 1, kr: 1 }, Pack { nr: 8, kr: 4 }, Pack { nr: 3, kr: 5 }] {
            let enc = encode(block, n, k, &m);
            let store = aligned(&enc);
            let s = BlockSparse::parse(bytes(&store, enc.len()), n, k, block).unwrap();
            assert_eq!(enc.len(), encoded_len(n, block, s.stored_blocks()).unwrap());
            for r in 0..n {
                for c in 0..k {
                    assert_eq!(s.get(r, c), m[r * k + c], "{block:?} ({r}, {c})");
                }
            }
            assert!((s.density() - block_density(block, n, k, &m)).abs() < 1e-12);
        }
    }

    #[test]
    fn empty_and_full_matrices() {
        let (n, k) = (16, 8);
        let zero = std::vec![0i8; n * k];
        let enc = encode(KERNEL_BLOCK, n, k, &zero);
        assert_eq!(enc.len(), 64, "two row pointers, padded");
        let store = aligned(&enc);
        assert_eq!(BlockSparse::parse(bytes(&store, enc.len()), n, k, KERNEL_BLOCK).unwrap().density(), 0.0);
        let full = std::vec![1i8; n * k];
        let enc = encode(KERNEL_BLOCK, n, k, &full);
        let store = aligned(&enc);
        assert_eq!(BlockSparse::parse(bytes(&store, enc.len()), n, k, KERNEL_BLOCK).unwrap().density(), 1.0);
    }

    #[test]
    fn malformed_encodings_are_rejected_by_name() {
        let (n, k) = (32, 16);
        let mut m = std::vec![0i8; n * k];
        m[0] = 1;
        m[5 * k + 9] = -3;
        m[20 * k + 15] = 7;
        let enc = encode(KERNEL_BLOCK, n, k, &m);
        let check = |e: &[u8]| {
            let store = aligned(e);
            BlockSparse::parse(bytes(&store, e.len()), n, k, KERNEL_BLOCK).map(|_| ())
        };
        assert!(check(&enc).is_ok());
        assert_eq!(check(&enc[..enc.len() - 1]), Err("block-sparse data size does not match its block count"));
        assert_eq!(check(&enc[..6]), Err("block-sparse data shorter than its row index"));
        let mut bad = enc.clone();
        bad[0] = 1; // row_ptr[0] != 0
        assert_eq!(check(&bad), Err("block-sparse row index not increasing from 0"));
        let mut bad = enc.clone();
        bad[12] = 4; // a column past K / 4 = 4 blocks (first column entry, after 3 row pointers)
        assert_eq!(check(&bad), Err("block-sparse columns not increasing or outside the matrix"));
        let mut bad = enc.clone();
        bad[4..8].copy_from_slice(&9u32.to_le_bytes()); // more blocks than the data holds
        assert!(check(&bad).is_err());
    }
}
