//! The `sparq` command line (the commands live in the library, `src/lib.rs`, which the Python
//! package shares).

fn main() {
    sparq::cli_main()
}
