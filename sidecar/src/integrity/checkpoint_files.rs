//! The names of the files in a checkpoint directory, in one place: `seal` writes each seal's
//! signed checkpoint to its file, and `verify --checkpoints` finds them by the same name.

use std::path::{Path, PathBuf};

const SUFFIX: &str = ".checkpoint";

/// The file of seal `seq` in the checkpoint directory: `000000000042.checkpoint`.
pub fn path(dir: &Path, seq: i64) -> PathBuf {
    dir.join(format!("{seq:012}{SUFFIX}"))
}

/// The seal a file name is the checkpoint of; None for any other file the directory holds
/// (seal's temporary files and its write probe among them).
pub fn seq_of(file_name: &str) -> Option<i64> {
    file_name
        .strip_suffix(SUFFIX)
        .and_then(|s| s.parse::<i64>().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seal_s_file_is_named_by_its_number_on_twelve_digits() {
        assert_eq!(
            path(Path::new("/checkpoints"), 42),
            PathBuf::from("/checkpoints/000000000042.checkpoint")
        );
        assert_eq!(
            path(Path::new("/checkpoints"), 1_234_567_890_123),
            PathBuf::from("/checkpoints/1234567890123.checkpoint")
        );
    }

    #[test]
    fn the_name_seal_writes_reads_back_as_its_seal() {
        for seq in [1, 42, 999_999_999_999, 1_000_000_000_000, i64::MAX] {
            let path = path(Path::new("dir"), seq);
            let name = path.file_name().and_then(|n| n.to_str());
            assert_eq!(name.and_then(seq_of), Some(seq), "{}", path.display());
        }
    }

    #[test]
    fn other_files_are_not_checkpoints() {
        for name in [
            ".audit-trail-write-test",
            ".tmpA1b2C3",
            "000000000042.checkpoint.bak",
            "000000000042",
            "notes.checkpoint",
            ".checkpoint",
        ] {
            assert_eq!(seq_of(name), None, "{name}");
        }
    }
}
