use core::fmt;
use sparq_format::FormatError;

/// Errors of loading a model or creating a session. `run()` has none: everything that can be
/// wrong is found before it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RuntimeError {
    /// The file's structure is invalid.
    Format(FormatError),
    /// An op's operands or parameters are inconsistent (checked at load, before any run).
    InvalidOp {
        index: usize,
        kind: &'static str,
        reason: &'static str,
    },
    /// An op kind this runtime does not implement.
    UnknownOp {
        index: usize,
        kind: u16,
    },
    ArenaTooSmall {
        needed: usize,
        given: usize,
    },
    ArenaMisaligned {
        address: usize,
    },
    /// The model needs a larger arena than the session's limit allows (`SessionOptions::max_arena`,
    /// the CLI's `--max-arena`, the C API's `max_arena`): refused before anything is allocated.
    ArenaLimit {
        needed: usize,
        limit: usize,
    },
    /// A graph input or output is unusable (a zero-size dimension).
    GraphIo {
        position: usize,
        reason: &'static str,
    },
    NoSuchInput {
        index: usize,
        count: usize,
    },
    NoSuchOutput {
        index: usize,
        count: usize,
    },
    InputLength {
        index: usize,
        expected: usize,
        given: usize,
    },
    InputDType {
        index: usize,
    },
    /// `set_input_u8` on an input that does not take uint8 frames.
    InputNotU8 {
        index: usize,
    },
    /// `SPARQ_KERNELS` names a kernel path this CPU cannot run (or that does not exist).
    KernelsUnavailable,
    /// More than one thread asked for where threads are unavailable (no_std), or zero.
    Threads {
        requested: usize,
    },
    #[cfg(feature = "std")]
    Io(std::io::ErrorKind),
    /// The host could not allocate the arena a model declares.
    #[cfg(feature = "std")]
    ArenaAllocation {
        size: usize,
    },
}

impl From<FormatError> for RuntimeError {
    fn from(e: FormatError) -> Self {
        RuntimeError::Format(e)
    }
}

impl fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use RuntimeError::*;
        match *self {
            Format(e) => write!(f, "invalid .sparq file: {e}"),
            InvalidOp { index, kind, reason } => write!(f, "invalid .sparq file: op {index} ({kind}): {reason}"),
            UnknownOp { index, kind } => write!(f, "op {index} has kind {kind}, which this runtime does not implement"),
            ArenaTooSmall { needed, given } => {
                write!(f, "arena too small: the model needs {needed} bytes, {given} given")
            }
            ArenaMisaligned { address } => {
                write!(f, "arena at {address:#x} is not 64-byte aligned")
            }
            ArenaLimit { needed, limit } => write!(
                f,
                "the model needs a {needed}-byte arena, above the {limit}-byte limit (raise it with --max-arena, \
                 SessionOptions::max_arena or the C API's max_arena if this is intended)"
            ),
            GraphIo { position, reason } => write!(f, "invalid .sparq file: graph input/output {position}: {reason}"),
            NoSuchInput { index, count } => {
                write!(f, "input {index} does not exist (the model has {count})")
            }
            NoSuchOutput { index, count } => {
                write!(f, "output {index} does not exist (the model has {count})")
            }
            InputLength { index, expected, given } => {
                write!(f, "input {index} expects {expected} values, {given} given (wrong input shape)")
            }
            InputDType { index } => write!(f, "input {index} is not an f32 tensor"),
            InputNotU8 { index } => write!(
                f,
                "input {index} does not take uint8 frames (compile the model with --input-dtype u8: an int8 input \
                 with zero point -128)"
            ),
            KernelsUnavailable => {
                write!(f, "SPARQ_KERNELS names a kernel path this CPU cannot run (paths: scalar; x86-64: avx2, avxvnni, avx512, avx512vnni; aarch64: neon, dotprod; armv7: armv7-neon)")
            }
            Threads { requested } => {
                write!(f, "{requested} threads requested: need at least 1, and exactly 1 without the std feature")
            }
            #[cfg(feature = "std")]
            Io(kind) => write!(f, "cannot read the model file: {kind}"),
            #[cfg(feature = "std")]
            ArenaAllocation { size } => write!(f, "cannot allocate the {size}-byte arena this model declares"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for RuntimeError {}
