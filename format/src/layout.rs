//! On-disk structures of the `.sparq` format (see `FORMAT.md`, which is normative).
//!
//! Every struct is `#[repr(C)]`, little-endian, with a compile-time size check. The reader never
//! casts file bytes to these structs: it reads each field at its `offset_of!` with
//! `from_le_bytes`, so a file is parsed identically on any host and alignment of the header area
//! does not matter. The structs are the single definition of where each field lives.

use core::mem::{offset_of, size_of};

/// File magic: a non-ASCII first byte (catches 7-bit transfers), "SPQ", then CR LF, EOF, LF
/// (catches newline translation), as PNG does.
pub const MAGIC: [u8; 8] = [0x89, b'S', b'P', b'Q', b'\r', b'\n', 0x1A, b'\n'];
/// Readers reject files whose major version differs from this one.
pub const VERSION_MAJOR: u16 = 1;
/// Minor revisions only add optional sections; readers skip sections they do not know.
pub const VERSION_MINOR: u16 = 7;
/// Every section and every constant tensor blob starts at a multiple of this many bytes.
pub const ALIGN: usize = 64;
/// Maximum tensor rank.
pub const MAX_RANK: usize = 6;
/// Number of `i32` parameter slots in an [`OpDesc`].
pub const OP_PARAMS: usize = 26;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FileHeader {
    pub magic: [u8; 8],
    pub version_major: u16,
    pub version_minor: u16,
    /// Size of this header in bytes (64).
    pub header_size: u32,
    pub section_count: u32,
    /// CRC-32 (IEEE) of the section table bytes.
    pub section_table_crc: u32,
    /// Total file size in bytes; the last section ends exactly here.
    pub file_size: u64,
    pub flags: u32,
    pub reserved: [u8; 24],
    /// CRC-32 of header bytes `0..60`.
    pub header_crc: u32,
}
const _: () = assert!(size_of::<FileHeader>() == 64);
const _: () = assert!(offset_of!(FileHeader, header_crc) == 60);

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SectionEntry {
    pub kind: u32,
    pub flags: u32,
    /// Absolute file offset, a multiple of [`ALIGN`].
    pub offset: u64,
    pub size: u64,
    /// CRC-32 (IEEE) of the section's bytes.
    pub crc32: u32,
    pub reserved: u32,
}
const _: () = assert!(size_of::<SectionEntry>() == 32);

/// Section kinds. Unknown kinds are skipped by readers of the same major version.
pub mod section {
    pub const META: u32 = 1;
    pub const STRINGS: u32 = 2;
    pub const TENSORS: u32 = 3;
    pub const OPS: u32 = 4;
    pub const OPERANDS: u32 = 5;
    pub const GRAPH_IO: u32 = 6;
    pub const WEIGHTS: u32 = 7;
    /// Kinds from here up are free for private use: every reader skips them.
    pub const PRIVATE: u32 = 0x1000;
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ModelMeta {
    /// Bytes of caller-supplied arena the model needs (activations and scratch).
    pub arena_size: u64,
    pub tensor_count: u32,
    pub op_count: u32,
    pub input_count: u32,
    pub output_count: u32,
    /// Model name, as a (offset, length) slice of the STRINGS section.
    pub name_off: u32,
    pub name_len: u32,
    pub reserved: [u8; 32],
}
const _: () = assert!(size_of::<ModelMeta>() == 64);

/// Element types.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    F32 = 1,
    I8 = 2,
    I32 = 3,
    /// Activations only (format 1.6): symmetric int16, zero point 0.
    I16 = 4,
}

impl DType {
    pub fn from_u8(v: u8) -> Option<DType> {
        match v {
            1 => Some(DType::F32),
            2 => Some(DType::I8),
            3 => Some(DType::I32),
            4 => Some(DType::I16),
            _ => None,
        }
    }
    pub const fn size(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::I8 => 1,
            DType::I16 => 2,
        }
    }
    pub const fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::I8 => "i8",
            DType::I32 => "i32",
            DType::I16 => "i16",
        }
    }
}

/// How a tensor's elements are laid out in memory.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Row-major in the order of `dims` (ONNX order).
    RowMajor = 0,
    /// `dims` are ONNX `N, C, H, W`; memory is `N, H, W, C` (channels last).
    Nhwc = 1,
    /// GEMM weight panels (format 1.1): see [`Pack`].
    Packed = 2,
    /// Block-sparse int8 weight matrix (format 1.2): see [`crate::sparse`]; the block shape is
    /// in `TensorDesc::pack`.
    BlockSparse = 3,
}

impl Layout {
    pub fn from_u8(v: u8) -> Option<Layout> {
        match v {
            0 => Some(Layout::RowMajor),
            1 => Some(Layout::Nhwc),
            2 => Some(Layout::Packed),
            3 => Some(Layout::BlockSparse),
            _ => None,
        }
    }
}

/// Panel packing of a constant weight matrix (layout `Packed`, format 1.1), the order the SIMD
/// GEMM kernels stream it in.
///
/// The matrix has `N = dims[0]` rows (output channels) and `K` = the product of the other dims
/// columns, in the order of the unpacked tensor's memory: `kh, kw, c` for a rank-4 convolution
/// weight (as in NHWC), row-major otherwise. Memory is `[ceil(N/nr)][ceil(K/kr)][nr][kr]`: panels
/// of `nr` rows, each a run of `nr x kr` blocks along K; rows and columns past `N` and `K` are
/// zero. `TensorDesc::pack` holds `nr | kr << 8`; both in `1..=64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pack {
    pub nr: usize,
    pub kr: usize,
}

impl Pack {
    pub const MAX: usize = 64;

    pub fn from_u32(v: u32) -> Option<Pack> {
        let (nr, kr) = ((v & 0xff) as usize, ((v >> 8) & 0xff) as usize);
        (v >> 16 == 0 && (1..=Self::MAX).contains(&nr) && (1..=Self::MAX).contains(&kr)).then_some(Pack { nr, kr })
    }
    pub fn to_u32(self) -> u32 {
        (self.nr as u32) | (self.kr as u32) << 8
    }
    /// Padded element count of an `n x k` matrix, `None` on overflow.
    pub fn elements(self, n: u64, k: u64) -> Option<u64> {
        n.div_ceil(self.nr as u64)
            .checked_mul(self.nr as u64)?
            .checked_mul(k.div_ceil(self.kr as u64).checked_mul(self.kr as u64)?)
    }
    /// Whether every element of packed `data` (elements of `size` bytes) past row `n` or column
    /// `k` is zero, as FORMAT.md requires. Visits only the padding.
    pub fn padding_is_zero(self, data: &[u8], n: usize, k: usize, size: usize) -> bool {
        let rows = n.div_ceil(self.nr) * self.nr;
        let kp = k.div_ceil(self.kr) * self.kr;
        let zero = |row: usize, col: usize| {
            let at = self.index(k, row, col) * size;
            data.get(at..at + size).is_some_and(|b| b.iter().all(|&v| v == 0))
        };
        (0..rows).all(|row| {
            let from = if row < n { k } else { 0 };
            (from..kp).all(|col| zero(row, col))
        })
    }
    /// Index of element `(row, col)` of a matrix with `k` columns.
    #[inline(always)]
    pub fn index(self, k: usize, row: usize, col: usize) -> usize {
        let kp = k.div_ceil(self.kr) * self.kr;
        (row / self.nr) * self.nr * kp + (col / self.kr) * self.nr * self.kr + (row % self.nr) * self.kr + col % self.kr
    }
    /// Pack a row-major `n x k` matrix.
    #[cfg(feature = "std")]
    pub fn pack<T: Copy + Default>(self, n: usize, k: usize, m: &[T]) -> std::vec::Vec<T> {
        let mut out = std::vec![T::default(); self.elements(n as u64, k as u64).unwrap_or(0) as usize];
        for r in 0..n {
            for c in 0..k {
                out[self.index(k, r, c)] = m[r * k + c];
            }
        }
        out
    }
}

/// Where a tensor's bytes live.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storage {
    /// In the caller's arena, at `data_offset`.
    Arena = 0,
    /// In the WEIGHTS section, at `data_offset` from its start (used in place, never copied).
    Constant = 1,
}

impl Storage {
    pub fn from_u8(v: u8) -> Option<Storage> {
        match v {
            0 => Some(Storage::Arena),
            1 => Some(Storage::Constant),
            _ => None,
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TensorDesc {
    pub name_off: u32,
    pub name_len: u32,
    pub data_offset: u64,
    pub data_size: u64,
    /// Logical (ONNX-order) dimensions; entries past `rank` are 0.
    pub dims: [u32; MAX_RANK],
    pub dtype: u8,
    pub rank: u8,
    pub layout: u8,
    pub storage: u8,
    /// Quantization of an i8 tensor: `real = scale * (q - zero_point)`. 0 / 0 for f32 and i32.
    pub scale: f32,
    pub zero_point: i32,
    /// Layout `Packed`: the panel sizes, layout `BlockSparse`: the block shape, as
    /// [`Pack::to_u32`]; otherwise 0.
    pub pack: u32,
}
const _: () = assert!(size_of::<TensorDesc>() == 64);

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OpDesc {
    pub kind: u16,
    pub flags: u16,
    pub input_count: u16,
    pub output_count: u16,
    /// Index into the OPERANDS array: `input_count` tensor indices, then `output_count`.
    pub operands_start: u32,
    pub name_off: u32,
    pub name_len: u32,
    pub reserved: u32,
    /// Kind-specific parameters; FORMAT.md lists the slots per kind. f32 values are stored as bits.
    pub params: [i32; OP_PARAMS],
}
const _: () = assert!(size_of::<OpDesc>() == 128);

impl Default for OpDesc {
    fn default() -> Self {
        OpDesc {
            kind: 0,
            flags: 0,
            input_count: 0,
            output_count: 0,
            operands_start: 0,
            name_off: 0,
            name_len: 0,
            reserved: 0,
            params: [0; OP_PARAMS],
        }
    }
}

/// Operator kinds and the meaning of their parameter slots.
pub mod op {
    pub const CONV2D: u16 = 1;
    pub const DEPTHWISE_CONV2D: u16 = 2;
    pub const FULLY_CONNECTED: u16 = 3;
    pub const ADD: u16 = 4;
    pub const MUL: u16 = 5;
    pub const CLAMP: u16 = 6;
    pub const MAX_POOL: u16 = 7;
    pub const AVERAGE_POOL: u16 = 8;
    pub const GLOBAL_AVERAGE_POOL: u16 = 9;
    pub const RESHAPE: u16 = 10;
    pub const CONCAT: u16 = 11;
    pub const SOFTMAX: u16 = 12;
    pub const QUANTIZE: u16 = 13;
    pub const DEQUANTIZE: u16 = 14;
    pub const REQUANTIZE: u16 = 15;
    /// int8 -> int8 through a 256-entry table (format 1.3): `y = table[x + 128]`.
    pub const LOOKUP: u16 = 16;
    /// f32 element-wise function (format 1.3): slot [`FUNCTION`] names it (see [`unary`]),
    /// [`ALPHA`] and [`BETA`] hold its f32 parameters.
    pub const UNARY: u16 = 17;
    /// Axis permutation (format 1.3): slot `i` (0..rank) holds the input axis of output axis `i`.
    pub const TRANSPOSE: u16 = 18;
    /// Strided window (format 1.3): output axis `i` reads input index `start + j * step` with
    /// `start` in slot [`SLICE_START`]` + i` and the (non-zero, possibly negative) `step` in slot
    /// [`SLICE_STEP`]` + i`.
    pub const SLICE: u16 = 19;
    /// Spatial resize of a rank-4 `[N, C, H, W]` tensor (format 1.3): slot [`RESIZE_MODE`]
    /// (0 nearest, 1 linear), [`RESIZE_COORD`] (0 half_pixel, 1 asymmetric, 2 align_corners,
    /// 3 pytorch_half_pixel, 4 tf_half_pixel_for_nn, 5 half_pixel_symmetric (1.5)), [`RESIZE_NEAREST`] (0 round_prefer_floor,
    /// 1 round_prefer_ceil, 2 floor, 3 ceil), [`RESIZE_SCALE_H`], [`RESIZE_SCALE_W`] (f32 bits).
    /// int8: nearest (1.3) and linear (1.5, Q11 fixed-point weights), one quantization in and out.
    pub const RESIZE: u16 = 20;
    /// Padding (format 1.3): output index `j` of axis `i` reads input index `j - before[i]`
    /// (`before` in slot [`PAD_BEFORE`]` + i`, `after` in [`PAD_AFTER`]` + i`); outside the input,
    /// slot [`PAD_MODE`] decides: 0 the constant of slot [`PAD_VALUE`] (f32 bits; int8: its
    /// quantized code), 1 reflect, 2 edge.
    pub const PAD: u16 = 21;
    /// Transposed convolution (format 1.3; int8 since 1.5): x, y NHWC; weights `[C_in,
    /// C_out/groups, KH, KW]` (ONNX order), bias `[C_out]`; the window slots of CONV2D (pads crop
    /// the full output), the output padding implied by y's size; the clamp slots. int8: weights
    /// i8 symmetric per output channel, then bias i32, multiplier i32 and shift i32 per output
    /// channel, as CONV2D.
    pub const CONV_TRANSPOSE: u16 = 22;
    /// Matrix product of two f32 tensors (format 1.4): `a [..., M, K]`, `b [..., K, N]`, batch
    /// axes broadcast (numpy `matmul`), y row-major `[..., M, N]`; slot [`MATMUL_TRANSPOSE`] bit 0:
    /// a is stored `[..., K, M]`, bit 1: b is stored `[..., N, K]`.
    pub const MATMUL: u16 = 23;
    /// Binary element-wise function with numpy broadcasting (format 1.4): slot [`FUNCTION`] (see
    /// [`binary`]); f32, or i8 for MIN and MAX with one quantization for all three operands, or
    /// i8 SUB (format 1.5) requantized as ADD with slots [`MULT_A`], [`MULT_B`], [`SHIFT`] and the
    /// clamp: `zp_y + round(((a - zp_a) mult_a - (b - zp_b) mult_b) / 2^shift)`.
    pub const BINARY: u16 = 24;
    /// Reduction of f32 over the axes of slot [`REDUCE_AXES`] (a bit mask; y keeps them with
    /// size 1), function in slot [`FUNCTION`] (see [`reduce`]); ARGMAX/ARGMIN give the index as
    /// f32, the last extreme one if slot [`REDUCE_SELECT_LAST`] is 1.
    pub const REDUCE: u16 = 25;
    /// Normalization over the trailing axes from slot [`AXIS`] (format 1.4): `y = (x - mean) /
    /// sqrt(var + eps) * scale + bias`, eps in slot [`NORM_EPSILON`] (f32 bits), scale and bias
    /// optional f32 constants of the trailing shape's element count; x, y f32 row-major.
    pub const NORMALIZE: u16 = 26;
    /// Gather along slot [`AXIS`] with constant i32 indices (format 1.4): y's shape is x's with
    /// that axis replaced by the indices' shape; i8: same quantization.
    pub const GATHER: u16 = 27;
    /// ONNX LSTM, f32 (format 1.4): inputs x `[T, B, I]`, W, R, bias (constants), h0, c0;
    /// outputs y `[T, D, B, H]`, y_h and y_c `[D, B, H]`; slots [`RNN_DIRECTION`], [`RNN_CLIP`].
    pub const LSTM: u16 = 28;
    /// ONNX GRU, f32 (format 1.4): inputs x, W, R, bias, h0; outputs y and y_h; slots as LSTM and
    /// [`RNN_LINEAR_BEFORE_RESET`].
    pub const GRU: u16 = 29;
    /// Select (format 1.4): inputs cond, a, b (f32, numpy broadcasting to y): `y = cond != 0 ? a :
    /// b`.
    pub const WHERE: u16 = 30;

    pub fn name(kind: u16) -> &'static str {
        match kind {
            CONV2D => "Conv2d",
            DEPTHWISE_CONV2D => "DepthwiseConv2d",
            FULLY_CONNECTED => "FullyConnected",
            ADD => "Add",
            MUL => "Mul",
            CLAMP => "Clamp",
            MAX_POOL => "MaxPool",
            AVERAGE_POOL => "AveragePool",
            GLOBAL_AVERAGE_POOL => "GlobalAveragePool",
            RESHAPE => "Reshape",
            CONCAT => "Concat",
            SOFTMAX => "Softmax",
            QUANTIZE => "Quantize",
            DEQUANTIZE => "Dequantize",
            REQUANTIZE => "Requantize",
            LOOKUP => "Lookup",
            UNARY => "Unary",
            TRANSPOSE => "Transpose",
            SLICE => "Slice",
            RESIZE => "Resize",
            PAD => "Pad",
            CONV_TRANSPOSE => "ConvTranspose",
            MATMUL => "MatMul",
            BINARY => "Binary",
            REDUCE => "Reduce",
            NORMALIZE => "Normalize",
            GATHER => "Gather",
            LSTM => "LSTM",
            GRU => "GRU",
            WHERE => "Where",
            _ => "unknown",
        }
    }

    /// Parameter slots of the window ops (CONV2D, DEPTHWISE_CONV2D, MAX_POOL, AVERAGE_POOL).
    pub mod window {
        pub const KERNEL_H: usize = 0;
        pub const KERNEL_W: usize = 1;
        pub const STRIDE_H: usize = 2;
        pub const STRIDE_W: usize = 3;
        pub const PAD_TOP: usize = 4;
        pub const PAD_LEFT: usize = 5;
        pub const PAD_BOTTOM: usize = 6;
        pub const PAD_RIGHT: usize = 7;
        pub const DILATION_H: usize = 8;
        pub const DILATION_W: usize = 9;
        /// CONV2D: number of groups. AVERAGE_POOL: 1 if padding counts in the divisor.
        pub const GROUPS: usize = 10;
    }
    /// Output clamp slots shared by every op with a fused activation (i8: quantized bounds;
    /// f32: bounds as f32 bits).
    pub const ACT_MIN: usize = 12;
    pub const ACT_MAX: usize = 13;
    /// Requantization of ops with a single output multiplier (ADD uses both A and B).
    pub const MULT_A: usize = 14;
    pub const MULT_B: usize = 15;
    pub const SHIFT: usize = 16;
    /// CONCAT, SOFTMAX: logical axis.
    pub const AXIS: usize = 17;
    /// LOOKUP (1.7): 1 for one table per channel (axis 1 of a rank-4 `x`; table `[C, 256]`), 0
    /// for one table.
    pub const LOOKUP_PER_CHANNEL: usize = 0;
    /// UNARY: the function ([`unary`] codes) and its f32 parameters (as bits).
    pub const FUNCTION: usize = 0;
    pub const ALPHA: usize = 1;
    pub const BETA: usize = 2;
    /// SLICE: the first of six start slots, and the first of six step slots.
    pub const SLICE_START: usize = 0;
    pub const SLICE_STEP: usize = 6;
    /// RESIZE slots.
    pub const RESIZE_MODE: usize = 0;
    pub const RESIZE_COORD: usize = 1;
    pub const RESIZE_NEAREST: usize = 2;
    pub const RESIZE_SCALE_H: usize = 3;
    pub const RESIZE_SCALE_W: usize = 4;
    /// RESIZE cubic (mode 2, format 1.4): the coefficient `a` (f32 bits) and exclude_outside (0, 1).
    pub const RESIZE_CUBIC_A: usize = 5;
    pub const RESIZE_EXCLUDE_OUTSIDE: usize = 6;
    /// PAD slots.
    pub const PAD_BEFORE: usize = 0;
    pub const PAD_AFTER: usize = 6;
    pub const PAD_MODE: usize = 12;
    pub const PAD_VALUE: usize = 13;
    /// MATMUL: operands stored transposed (bit 0 a, bit 1 b).
    pub const MATMUL_TRANSPOSE: usize = 0;
    /// REDUCE slots (with [`FUNCTION`]).
    pub const REDUCE_AXES: usize = 1;
    pub const REDUCE_SELECT_LAST: usize = 2;
    /// LSTM, GRU: 0 forward, 1 reverse, 2 bidirectional; the clip (f32 bits, 0: none); GRU's
    /// linear_before_reset (0 or 1).
    pub const RNN_DIRECTION: usize = 0;
    pub const RNN_CLIP: usize = 1;
    pub const RNN_LINEAR_BEFORE_RESET: usize = 2;
    /// NORMALIZE: epsilon (f32 bits; with [`AXIS`]).
    pub const NORM_EPSILON: usize = 1;

    /// The first format minor that defines op `kind` with parameters `params` and output element
    /// type `dtype` (a kind's later modes and forms: RESIZE's cubic mode is 1.4; int8 RESIZE
    /// linear, int8 CONV_TRANSPOSE and int8 BINARY Sub are 1.5).
    pub const fn op_minor(kind: u16, params: &[i32; crate::layout::OP_PARAMS], dtype: crate::layout::DType) -> u16 {
        let int8 = matches!(dtype, crate::layout::DType::I8);
        if kind == LOOKUP && params[LOOKUP_PER_CHANNEL] != 0 {
            // Per-channel tables into int8 or int16 (1.7: camera frames normalized).
            return 7;
        }
        if matches!(dtype, crate::layout::DType::I16) {
            // The int16 forms of 1.6 (A16W8 layers and the conversions to and from int16).
            return 6;
        }
        if (kind == RESIZE && params[RESIZE_COORD] == 5)
            || int8
                && ((kind == RESIZE && params[RESIZE_MODE] == 1)
                    || kind == CONV_TRANSPOSE
                    || (kind == BINARY && params[FUNCTION] == binary::SUB))
        {
            5
        } else if kind == RESIZE && params[RESIZE_MODE] == 2 {
            4
        } else {
            since_minor(kind)
        }
    }

    /// The first format minor that defines op `kind` (0 for the kinds of 1.0).
    pub const fn since_minor(kind: u16) -> u16 {
        match kind {
            LOOKUP | UNARY | TRANSPOSE | SLICE | RESIZE | PAD | CONV_TRANSPOSE => 3,
            MATMUL | BINARY | REDUCE | NORMALIZE | GATHER | LSTM | GRU | WHERE => 4,
            _ => 0,
        }
    }

    /// Functions of the UNARY op (slot [`FUNCTION`]), with the parameters they read.
    pub mod unary {
        /// `1 / (1 + e^-x)`
        pub const SIGMOID: i32 = 1;
        pub const TANH: i32 = 2;
        /// `clamp(alpha x + beta, 0, 1)` (ONNX HardSigmoid; alpha 0.2, beta 0.5 by default)
        pub const HARD_SIGMOID: i32 = 3;
        /// `x * clamp(x / 6 + 1 / 2, 0, 1)`
        pub const HARD_SWISH: i32 = 4;
        /// `x * sigmoid(x)` (SiLU, Swish)
        pub const SILU: i32 = 5;
        /// `x / 2 * (1 + erf(x / sqrt 2))`
        pub const GELU: i32 = 6;
        /// `x < 0 ? alpha x : x`
        pub const LEAKY_RELU: i32 = 7;
        /// `x < 0 ? alpha (e^x - 1) : x`
        pub const ELU: i32 = 8;
        /// `ln(1 + e^x)`
        pub const SOFTPLUS: i32 = 9;
        pub const EXP: i32 = 10;
        pub const LOG: i32 = 11;
        pub const SQRT: i32 = 12;
        /// `1 / x`
        pub const RECIPROCAL: i32 = 13;
        pub const NEG: i32 = 14;
        pub const ABS: i32 = 15;
        pub const ERF: i32 = 16;
        /// `x / 2 * (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))` (GELU, tanh approximation)
        pub const GELU_TANH: i32 = 17;

        pub const fn name(code: i32) -> Option<&'static str> {
            Some(match code {
                SIGMOID => "Sigmoid",
                TANH => "Tanh",
                HARD_SIGMOID => "HardSigmoid",
                HARD_SWISH => "HardSwish",
                SILU => "SiLU",
                GELU => "Gelu",
                LEAKY_RELU => "LeakyRelu",
                ELU => "Elu",
                SOFTPLUS => "Softplus",
                EXP => "Exp",
                LOG => "Log",
                SQRT => "Sqrt",
                RECIPROCAL => "Reciprocal",
                NEG => "Neg",
                ABS => "Abs",
                ERF => "Erf",
                GELU_TANH => "GeluTanh",
                _ => return None,
            })
        }
    }

    /// Functions of the BINARY op (slot [`FUNCTION`]).
    pub mod binary {
        /// `a - b`
        pub const SUB: i32 = 1;
        /// `a / b`
        pub const DIV: i32 = 2;
        pub const MIN: i32 = 3;
        pub const MAX: i32 = 4;
        /// `a^b` (`powf`)
        pub const POW: i32 = 5;
        /// Comparisons: 1.0 where true, else 0.0 (false when either operand is NaN).
        pub const EQUAL: i32 = 6;
        pub const LESS: i32 = 7;
        pub const GREATER: i32 = 8;
        pub const LESS_OR_EQUAL: i32 = 9;
        pub const GREATER_OR_EQUAL: i32 = 10;

        pub const fn name(code: i32) -> Option<&'static str> {
            Some(match code {
                SUB => "Sub",
                DIV => "Div",
                MIN => "Min",
                MAX => "Max",
                POW => "Pow",
                EQUAL => "Equal",
                LESS => "Less",
                GREATER => "Greater",
                LESS_OR_EQUAL => "LessOrEqual",
                GREATER_OR_EQUAL => "GreaterOrEqual",
                _ => return None,
            })
        }
    }

    /// Functions of the REDUCE op (slot [`FUNCTION`]).
    pub mod reduce {
        pub const SUM: i32 = 1;
        pub const MEAN: i32 = 2;
        pub const MAX: i32 = 3;
        pub const MIN: i32 = 4;
        pub const PROD: i32 = 5;
        /// `sum |x|`
        pub const L1: i32 = 6;
        /// `sqrt(sum x^2)`
        pub const L2: i32 = 7;
        /// `sum x^2`
        pub const SUM_SQUARE: i32 = 8;
        /// `ln(sum x)`
        pub const LOG_SUM: i32 = 9;
        /// `ln(sum e^x)`, computed as `m + ln(sum e^(x - m))` with `m` the maximum
        pub const LOG_SUM_EXP: i32 = 10;
        /// index of the maximum (the first, or the last with slot `REDUCE_SELECT_LAST` 1), as f32
        pub const ARGMAX: i32 = 11;
        pub const ARGMIN: i32 = 12;

        pub const fn name(code: i32) -> Option<&'static str> {
            Some(match code {
                SUM => "ReduceSum",
                MEAN => "ReduceMean",
                MAX => "ReduceMax",
                MIN => "ReduceMin",
                PROD => "ReduceProd",
                L1 => "ReduceL1",
                L2 => "ReduceL2",
                SUM_SQUARE => "ReduceSumSquare",
                LOG_SUM => "ReduceLogSum",
                LOG_SUM_EXP => "ReduceLogSumExp",
                ARGMAX => "ArgMax",
                ARGMIN => "ArgMin",
                _ => return None,
            })
        }
    }

    /// The parameter slots op `kind` uses, as a bit mask (bit `i`: slot `i`); every other slot
    /// must be 0. `None` for a kind this version does not define.
    pub const fn param_slots(kind: u16) -> Option<u32> {
        const WINDOW: u32 = (1 << 10) - 1; // kernel, stride, pads, dilation: slots 0..=9
        const ACT: u32 = 1 << ACT_MIN | 1 << ACT_MAX;
        const RESCALE: u32 = 1 << MULT_A | 1 << SHIFT;
        Some(match kind {
            CONV2D | DEPTHWISE_CONV2D | CONV_TRANSPOSE => WINDOW | 1 << window::GROUPS | ACT,
            FULLY_CONNECTED | CLAMP => ACT,
            ADD => ACT | RESCALE | 1 << MULT_B,
            MUL => ACT | RESCALE,
            MAX_POOL => WINDOW,
            AVERAGE_POOL => WINDOW | 1 << window::GROUPS,
            GLOBAL_AVERAGE_POOL | REQUANTIZE => RESCALE,
            CONCAT | SOFTMAX => 1 << AXIS,
            RESHAPE | QUANTIZE | DEQUANTIZE | WHERE => 0,
            LOOKUP => 1 << LOOKUP_PER_CHANNEL,
            UNARY => 1 << FUNCTION | 1 << ALPHA | 1 << BETA,
            TRANSPOSE => (1 << 6) - 1,
            SLICE => (1 << 12) - 1,
            RESIZE => (1 << 7) - 1,
            PAD => (1 << 14) - 1,
            MATMUL => 1 << MATMUL_TRANSPOSE,
            // int8 Sub (1.5) requantizes as ADD does: clamp, both multipliers, shift.
            BINARY => 1 << FUNCTION | ACT | RESCALE | 1 << MULT_B,
            REDUCE => 1 << FUNCTION | 1 << REDUCE_AXES | 1 << REDUCE_SELECT_LAST,
            NORMALIZE => 1 << AXIS | 1 << NORM_EPSILON,
            GATHER => 1 << AXIS,
            LSTM => 1 << RNN_DIRECTION | 1 << RNN_CLIP,
            GRU => 1 << RNN_DIRECTION | 1 << RNN_CLIP | 1 << RNN_LINEAR_BEFORE_RESET,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::op::{self, binary};
    use super::{DType, OP_PARAMS};

    /// The int8 forms of 1.5 need 1.5; the same kinds in f32, and their other int8 forms, keep
    /// the minor that introduced them.
    #[test]
    fn op_minor_depends_on_the_dtype_for_the_int8_forms_of_1_5() {
        let with = |slot: usize, v: i32| {
            let mut p = [0i32; OP_PARAMS];
            p[slot] = v;
            p
        };
        let linear = with(op::RESIZE_MODE, 1);
        assert_eq!(op::op_minor(op::RESIZE, &linear, DType::I8), 5);
        assert_eq!(op::op_minor(op::RESIZE, &linear, DType::F32), 3);
        assert_eq!(op::op_minor(op::RESIZE, &with(op::RESIZE_MODE, 0), DType::I8), 3);
        assert_eq!(op::op_minor(op::RESIZE, &with(op::RESIZE_MODE, 2), DType::F32), 4);
        assert_eq!(op::op_minor(op::RESIZE, &with(op::RESIZE_COORD, 5), DType::F32), 5);
        let none = [0i32; OP_PARAMS];
        assert_eq!(op::op_minor(op::CONV_TRANSPOSE, &none, DType::I8), 5);
        assert_eq!(op::op_minor(op::CONV_TRANSPOSE, &none, DType::F32), 3);
        for (function, minor) in [(binary::SUB, 5), (binary::MIN, 4), (binary::MAX, 4)] {
            assert_eq!(op::op_minor(op::BINARY, &with(op::FUNCTION, function), DType::I8), minor);
            assert_eq!(op::op_minor(op::BINARY, &with(op::FUNCTION, function), DType::F32), 4);
        }
        assert_eq!(op::op_minor(op::ADD, &none, DType::I8), 0);
        assert_eq!(op::op_minor(op::CONV2D, &none, DType::I16), 6);
        assert_eq!(op::op_minor(op::REQUANTIZE, &none, DType::I16), 6);
        assert_eq!(op::op_minor(op::LOOKUP, &none, DType::I8), 3);
        assert_eq!(op::op_minor(op::LOOKUP, &with(op::LOOKUP_PER_CHANNEL, 1), DType::I8), 7);
        assert_eq!(op::op_minor(op::LOOKUP, &with(op::LOOKUP_PER_CHANNEL, 1), DType::I16), 7);
        assert_eq!(super::VERSION_MINOR, 7);
    }
}
