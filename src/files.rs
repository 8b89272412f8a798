//! Local files secretsync writes for itself (the report, the discovery cache, merge markers,
//! the metrics textfile, `migrate` output, file stores) and reads from file stores.
//!
//! One place so every such file gets the same treatment: created 0600 (folders 0700), never
//! opened through a symbolic link (a link planted where the report goes must not redirect
//! merged data to `/etc/…`; a link in a source folder must not read `/proc/self/environ` into
//! a target), and replaced atomically — written to a temporary file in the same folder,
//! flushed, renamed over the old one, and the folder flushed — so a crash or a full disk leaves
//! either the old file or the new one, never half of either.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Names of temporary files start with this; file stores skip them when listing.
pub const TMP_PREFIX: &str = ".secretsync-tmp-";

/// Whether an I/O error means "a symbolic link was in the way" (`O_NOFOLLOW` on a link).
pub fn is_symlink_refusal(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::InvalidInput && err.to_string().contains(SYMLINK_REFUSAL)
}

const SYMLINK_REFUSAL: &str = "is a symbolic link, which secretsync does not follow";

fn symlink_error(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("`{}` {SYMLINK_REFUSAL}", path.display()),
    )
}

/// Replaces `path` with `bytes` atomically, as a private file; `path` itself may be a link
/// (the link is replaced, not followed). Its folder must exist (see [`create_private_dirs`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = parent(path);
    // Unpredictable, so a file left by a killed run (in a container every run is pid 1 and
    // makes the same writes in the same order) never blocks the next one.
    let tmp = dir.join(format!(
        "{TMP_PREFIX}{}-{}-{:016x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        fastrand::u64(..)
    ));
    let written = (|| {
        let mut file = create_new_private(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(err) = written {
        let _ = fs::remove_file(&tmp);
        return Err(err);
    }
    sync_dir(dir)
}

/// Creates `path` as a new private file; fails if anything (a file or a link) is there.
pub fn create_new_private(path: &Path) -> io::Result<fs::File> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// Opens `path` to append, creating it private; refuses a symbolic link.
pub fn append_private(path: &Path) -> io::Result<fs::File> {
    let mut options = fs::OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    }
    options.open(path).map_err(|err| nofollow_error(err, path))
}

/// The bytes of the regular file `path`, `None` when nothing is there. A symbolic link, a
/// folder or anything else that is not a regular file is an error (opened without following
/// links and without blocking, so a FIFO cannot hang the run).
pub fn read_regular(path: &Path) -> io::Result<Option<Vec<u8>>> {
    let mut options = fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    let mut file = match options.open(path) {
        Ok(file) => file,
        Err(err) if matches!(err.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => {
            return Ok(None);
        }
        Err(err) => return Err(nofollow_error(err, path)),
    };
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("`{}` is not a regular file", path.display()),
        ));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.read_to_end(&mut bytes)?;
    Ok(Some(bytes))
}

/// `O_NOFOLLOW` on a link fails with `ELOOP`; say what it means.
fn nofollow_error(err: io::Error, path: &Path) -> io::Error {
    #[cfg(unix)]
    if err.raw_os_error() == Some(libc::ELOOP) {
        return symlink_error(path);
    }
    let _ = path;
    err
}

/// Checks that no folder between `root` and `path` is a symbolic link (links inside a store
/// would let a name reach outside it). `root` itself is the user's choice and may be one.
pub fn check_no_links_below(root: &Path, path: &Path) -> io::Result<()> {
    let Ok(rel) = path.strip_prefix(root) else {
        return Ok(());
    };
    let mut at = PathBuf::from(root);
    let mut parts = rel.components().peekable();
    while let Some(part) = parts.next() {
        at.push(part);
        if parts.peek().is_none() {
            break;
        }
        match fs::symlink_metadata(&at) {
            Ok(meta) if meta.file_type().is_symlink() => return Err(symlink_error(&at)),
            Ok(_) => {}
            Err(err) if matches!(err.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => return Ok(()),
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

/// Creates `dir` and its missing parents with mode 0700, flushing each parent of a folder it
/// created so the new folder survives a crash.
pub fn create_private_dirs(dir: &Path) -> io::Result<()> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    create_private_dirs(parent(dir))?;
    let mut builder = fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    match builder.create(dir) {
        Ok(()) => sync_dir(parent(dir)),
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(err) => Err(err),
    }
}

/// Flushes a folder's entries (a rename or an unlink in it) to disk.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        fs::File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// The folder `path` is in (`.` for a bare file name).
pub fn parent(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::{PermissionsExt, symlink};

    use super::*;

    #[test]
    fn atomic_writes_are_private_replace_links_instead_of_following_them_and_leave_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        fs::write(&outside, "keep").unwrap();
        let report = dir.path().join("out/report.json");
        fs::create_dir(dir.path().join("out")).unwrap();
        symlink(&outside, &report).unwrap();
        write_atomic(&report, b"new").unwrap();
        assert_eq!(
            fs::read_to_string(&outside).unwrap(),
            "keep",
            "the link was not followed"
        );
        assert_eq!(fs::read_to_string(&report).unwrap(), "new");
        assert!(!fs::symlink_metadata(&report).unwrap().file_type().is_symlink());
        assert_eq!(fs::metadata(&report).unwrap().permissions().mode() & 0o777, 0o600);
        let names: Vec<_> = fs::read_dir(dir.path().join("out"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["report.json"]);
        create_private_dirs(&dir.path().join("new/deep")).unwrap();
        write_atomic(&dir.path().join("new/deep/file"), b"x").unwrap();
        assert_eq!(
            fs::metadata(dir.path().join("new/deep")).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }

    #[test]
    fn reads_refuse_links_folders_and_fifos_and_treat_missing_as_none() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        fs::write(&file, "v").unwrap();
        assert_eq!(read_regular(&file).unwrap().as_deref(), Some(&b"v"[..]));
        assert_eq!(read_regular(&dir.path().join("missing")).unwrap(), None);
        let link = dir.path().join("link");
        symlink("/proc/self/environ", &link).unwrap();
        let err = read_regular(&link).unwrap_err();
        assert!(is_symlink_refusal(&err), "{err}");
        assert!(read_regular(dir.path()).is_err(), "a folder is not a file");
        let fifo = dir.path().join("fifo");
        let status = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(status.success());
        let err = read_regular(&fifo).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        let appended = append_private(&link).unwrap_err();
        assert!(is_symlink_refusal(&appended), "{appended}");
    }

    #[test]
    fn links_between_a_root_and_a_path_are_found() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("real")).unwrap();
        symlink(dir.path().join("real"), dir.path().join("via")).unwrap();
        let err = check_no_links_below(dir.path(), &dir.path().join("via/x")).unwrap_err();
        assert!(is_symlink_refusal(&err), "{err}");
        check_no_links_below(dir.path(), &dir.path().join("real/x")).unwrap();
        check_no_links_below(dir.path(), &dir.path().join("absent/x")).unwrap();
    }
}
