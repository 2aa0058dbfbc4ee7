//! Files and folders that hold personal data or keys are created owner-only (0600 files,
//! 0700 folders) whatever the umask of whoever starts the hub. What exists already keeps the
//! mode its owner gave it.
use std::{fs, io, path::Path};

/// Creates `dir` and its missing parents with mode 0700.
pub fn create_dir(dir: &Path) -> io::Result<()> {
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
}

/// Creates `file` empty with mode 0600 unless it exists.
pub fn create_file(file: &Path) -> io::Result<()> {
    let mut o = fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    match o.open(file) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).expect("metadata").permissions().mode() & 0o777
    }

    #[test]
    fn owner_only_and_existing_left_alone() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("data/sub");
        create_dir(&dir).expect("dir");
        assert_eq!((mode(&dir), mode(&tmp.path().join("data"))), (0o700, 0o700));
        let f = dir.join("x.db");
        create_file(&f).expect("file");
        assert_eq!(mode(&f), 0o600);
        fs::set_permissions(&f, fs::Permissions::from_mode(0o640)).expect("chmod");
        create_file(&f).expect("exists");
        assert_eq!(mode(&f), 0o640, "an existing file keeps its mode");
    }
}
