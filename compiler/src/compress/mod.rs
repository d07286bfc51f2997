//! Compression passes over the IR: magnitude pruning ([`prune`]), structured channel pruning
//! ([`channels`]) and the least-squares re-fitting of pruned layers ([`reconstruct`]). The place
//! for low-rank factorization and distillation later.

pub mod channels;
pub mod prune;
pub mod reconstruct;
