use core::fmt;

/// Every way a byte string can fail to be a valid `.sparq` file. One variant per failure; the
/// `Display` text is a sentence that says what is wrong and where. The strict ones (since 1.2's
/// reader): `NonZeroField` (flags, reserved bytes, f32/i32 quantization fields), `UnusedParam` (a
/// parameter slot the op's kind does not use), `NewerMinor` (a minor above the reader's, which
/// may give meaning to fields this reader would misread), `MinorTooLow` (a feature of a later
/// minor than the file declares), `UnknownSection` (a non-private kind no minor up to the
/// reader's defines).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormatError {
    TooShort { len: usize, need: usize },
    BadMagic,
    UnsupportedVersion { major: u16, minor: u16 },
    HeaderChecksum,
    BadHeaderSize { found: u32 },
    FileSizeMismatch { header: u64, actual: u64 },
    TooManySections { count: u32, max: u32 },
    SectionTableChecksum,
    SectionOutOfBounds { index: usize, kind: u32 },
    SectionMisaligned { index: usize, kind: u32, offset: u64 },
    SectionsOverlap { first: usize, second: usize },
    SectionChecksum { index: usize, kind: u32 },
    DuplicateSection { kind: u32 },
    MissingSection { kind: u32 },
    SectionSize { kind: u32, size: u64 },
    ArenaTooLarge { size: u64 },
    NoInputsOrOutputs,
    MisalignedBuffer { address: usize },
    BadString { what: &'static str },
    BadTensor { index: usize, reason: &'static str },
    BadOp { index: usize, reason: &'static str },
    BadGraphIo { position: usize, tensor: u32 },
    NonZeroPadding { offset: u64 },
    NonZeroField { field: &'static str, offset: u64, value: u64 },
    UnusedParam { index: usize, kind: u16, slot: usize, offset: u64, value: u32 },
    NewerMinor { minor: u16 },
    MinorTooLow { minor: u16, needed: u16, feature: &'static str, offset: u64 },
    UnknownSection { index: usize, kind: u32 },
}

pub fn section_name(kind: u32) -> &'static str {
    use crate::layout::section::*;
    match kind {
        META => "META",
        STRINGS => "STRINGS",
        TENSORS => "TENSORS",
        OPS => "OPS",
        OPERANDS => "OPERANDS",
        GRAPH_IO => "GRAPH_IO",
        WEIGHTS => "WEIGHTS",
        _ => "unknown",
    }
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use FormatError::*;
        match *self {
            TooShort { len, need } => write!(f, "file is truncated: {len} bytes, at least {need} needed"),
            BadMagic => write!(f, "not a .sparq file (bad magic bytes)"),
            UnsupportedVersion { major, minor } => write!(
                f,
                "unsupported .sparq format version {major}.{minor} (this reader reads major version {})",
                crate::layout::VERSION_MAJOR
            ),
            HeaderChecksum => write!(f, "header checksum mismatch (file is corrupted)"),
            BadHeaderSize { found } => write!(f, "header size is {found}, expected 64"),
            FileSizeMismatch { header, actual } => {
                write!(f, "file is {actual} bytes but its header says {header} (truncated or padded)")
            }
            TooManySections { count, max } => write!(f, "section count {count} exceeds the maximum {max}"),
            SectionTableChecksum => write!(f, "section table checksum mismatch (file is corrupted)"),
            SectionOutOfBounds { index, kind } => {
                write!(f, "section {index} ({}) lies outside the file", section_name(kind))
            }
            SectionMisaligned { index, kind, offset } => {
                write!(f, "section {index} ({}) starts at offset {offset}, not a multiple of 64", section_name(kind))
            }
            SectionsOverlap { first, second } => write!(f, "sections {first} and {second} overlap"),
            SectionChecksum { index, kind } => {
                write!(f, "section {index} ({}) checksum mismatch (file is corrupted)", section_name(kind))
            }
            DuplicateSection { kind } => write!(f, "section {} appears twice", section_name(kind)),
            MissingSection { kind } => write!(f, "required section {} is missing", section_name(kind)),
            SectionSize { kind, size } => {
                write!(f, "section {} has size {size}, which does not match its counts", section_name(kind))
            }
            ArenaTooLarge { size } => write!(f, "arena size {size} is too large for this machine"),
            NoInputsOrOutputs => write!(f, "model declares no inputs or no outputs"),
            MisalignedBuffer { address } => {
                write!(f, "buffer at address {address:#x} is not 4-byte aligned; load with Model::open or AlignedBytes")
            }
            BadString { what } => write!(f, "{what} is not a valid UTF-8 slice of the strings section"),
            BadTensor { index, reason } => write!(f, "tensor {index}: {reason}"),
            BadOp { index, reason } => write!(f, "op {index}: {reason}"),
            NonZeroField { field, offset, value } => {
                write!(f, "{field} at offset {offset} is {value:#x}; the format reserves it as 0")
            }
            UnusedParam { index, kind, slot, offset, value } => write!(
                f,
                "op {index} ({}): parameter slot {slot} (offset {offset}) is {value:#x}, but the op does not use it \
                 and the format reserves it as 0",
                crate::layout::op::name(kind)
            ),
            NewerMinor { minor } => write!(
                f,
                "format version {}.{minor} (version_minor at offset 10) is newer than this reader's {}.{}: update sparq",
                crate::layout::VERSION_MAJOR,
                crate::layout::VERSION_MAJOR,
                crate::layout::VERSION_MINOR
            ),
            MinorTooLow { minor, needed, feature, offset } => write!(
                f,
                "{feature} (at offset {offset}) needs format {}.{needed}, but version_minor (offset 10) is {minor}",
                crate::layout::VERSION_MAJOR
            ),
            UnknownSection { index, kind } => write!(
                f,
                "section {index} (entry at offset {}) has kind {kind}, which this format version does not define",
                64 + 32 * index
            ),
            NonZeroPadding { offset } => write!(f, "padding at offset {offset} is not zero (file is corrupted)"),
            BadGraphIo { position, tensor } => {
                write!(f, "graph input/output {position} refers to tensor {tensor}, which is missing or constant")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for FormatError {}
