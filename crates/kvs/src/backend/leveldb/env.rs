//! The file system as rusty-leveldb sees it: [`PosixDiskEnv`], except that
//! written files sync their data on flush when asked to.

use rusty_leveldb::env::{Env, FileLock, Logger, RandomAccess};
use rusty_leveldb::{PosixDiskEnv, Status};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
#[cfg(test)]
use std::sync::Arc;

/// `PosixDiskEnv` whose written files `fdatasync` when flushed, if `sync`.
///
/// rusty-leveldb flushes its log after a write with `sync = true`; with the
/// plain `PosixDiskEnv` that only empties a user-space buffer.
pub(super) struct SyncingEnv {
    inner: PosixDiskEnv,
    sync: bool,
}

impl SyncingEnv {
    pub(super) fn new(sync: bool) -> SyncingEnv {
        SyncingEnv {
            inner: PosixDiskEnv::new(),
            sync,
        }
    }
}

/// The file system this backend gives rusty-leveldb, for code that drives
/// rusty-leveldb itself and wants to write the way kvs does (the
/// benchmark's raw subject): written files go to the operating system on
/// every flush, and with `sync` they `fdatasync` too. Part of
/// [`kvs::raw`](crate::raw).
///
/// ```
/// let options = rusty_leveldb::Options {
///     env: std::rc::Rc::new(kvs::raw::leveldb_env(false)),
///     ..rusty_leveldb::Options::default()
/// };
/// # let _ = options;
/// ```
pub fn env(sync: bool) -> Box<dyn Env> {
    Box::new(SyncingEnv::new(sync))
}

/// A file that syncs its data to disk on `flush`.
struct SyncOnFlush {
    file: BufWriter<Disk>,
    sync: bool,
}

impl SyncOnFlush {
    fn new(file: File, path: &Path, sync: bool) -> SyncOnFlush {
        #[cfg(not(test))]
        let _ = path;
        SyncOnFlush {
            file: BufWriter::new(Disk {
                file,
                #[cfg(test)]
                faults: faults::armed_for(path),
            }),
            sync,
        }
    }
}

impl Write for SyncOnFlush {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()?;
        if self.sync {
            self.file.get_ref().file.sync_data()?;
        }
        Ok(())
    }
}

/// Where written bytes go: the file, through the faults the crate's own
/// tests inject (none in a real build).
struct Disk {
    file: File,
    #[cfg(test)]
    faults: Option<Arc<faults::Faults>>,
}

impl Write for Disk {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        #[cfg(test)]
        if let Some(faults) = &self.faults {
            let allowed = faults.allow(buf.len())?;
            return self.file.write(&buf[..allowed]);
        }
        self.file.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

fn io_status(what: &str, path: &Path, e: std::io::Error) -> Status {
    let mut status = Status::from(e);
    status.err = format!("{what} {}: {}", path.display(), status.err);
    status
}

impl Env for SyncingEnv {
    fn open_sequential_file(&self, p: &Path) -> rusty_leveldb::Result<Box<dyn Read>> {
        self.inner.open_sequential_file(p)
    }
    fn open_random_access_file(&self, p: &Path) -> rusty_leveldb::Result<Box<dyn RandomAccess>> {
        self.inner.open_random_access_file(p)
    }
    fn open_writable_file(&self, p: &Path) -> rusty_leveldb::Result<Box<dyn Write>> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(p)
            .map_err(|e| io_status("open (write)", p, e))?;
        Ok(Box::new(SyncOnFlush::new(file, p, self.sync)))
    }
    fn open_appendable_file(&self, p: &Path) -> rusty_leveldb::Result<Box<dyn Write>> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .map_err(|e| io_status("open (append)", p, e))?;
        Ok(Box::new(SyncOnFlush::new(file, p, self.sync)))
    }
    fn exists(&self, p: &Path) -> rusty_leveldb::Result<bool> {
        self.inner.exists(p)
    }
    fn children(&self, p: &Path) -> rusty_leveldb::Result<Vec<PathBuf>> {
        self.inner.children(p)
    }
    fn size_of(&self, p: &Path) -> rusty_leveldb::Result<usize> {
        self.inner.size_of(p)
    }
    fn delete(&self, p: &Path) -> rusty_leveldb::Result<()> {
        self.inner.delete(p)
    }
    fn mkdir(&self, p: &Path) -> rusty_leveldb::Result<()> {
        self.inner.mkdir(p)
    }
    fn rmdir(&self, p: &Path) -> rusty_leveldb::Result<()> {
        self.inner.rmdir(p)
    }
    fn rename(&self, old: &Path, new: &Path) -> rusty_leveldb::Result<()> {
        self.inner.rename(old, new)
    }
    fn lock(&self, p: &Path) -> rusty_leveldb::Result<FileLock> {
        self.inner.lock(p)
    }
    fn unlock(&self, l: FileLock) -> rusty_leveldb::Result<()> {
        self.inner.unlock(l)
    }
    fn new_logger(&self, p: &Path) -> rusty_leveldb::Result<Logger> {
        self.inner.new_logger(p)
    }
    fn micros(&self) -> u64 {
        self.inner.micros()
    }
    fn sleep_for(&self, micros: u32) {
        self.inner.sleep_for(micros);
    }
}

/// Fault injection for the crate's own tests: a disk that fills up.
#[cfg(test)]
pub(super) mod faults {
    use parking_lot::Mutex;
    use std::path::{Path, PathBuf};
    use std::sync::Arc;

    /// The faults of one database directory.
    #[derive(Debug, Default)]
    pub(crate) struct Faults {
        /// Bytes the disk still takes; `None`: as many as written.
        room: Mutex<Option<usize>>,
    }

    impl Faults {
        /// From now on the disk takes `bytes` more, then fails every write
        /// with `ENOSPC` (a write that does not fit is cut short first, as
        /// `write(2)` does).
        pub(crate) fn fill_after(&self, bytes: usize) {
            *self.room.lock() = Some(bytes);
        }

        /// Space is back.
        pub(crate) fn free(&self) {
            *self.room.lock() = None;
        }

        /// How much of a write of `len` bytes the disk takes.
        pub(super) fn allow(&self, len: usize) -> std::io::Result<usize> {
            let mut room = self.room.lock();
            match &mut *room {
                None => Ok(len),
                Some(0) if len > 0 => Err(std::io::Error::from_raw_os_error(28)),
                Some(left) => {
                    let n = len.min(*left);
                    *left -= n;
                    Ok(n)
                }
            }
        }
    }

    static ARMED: Mutex<Vec<(PathBuf, Arc<Faults>)>> = Mutex::new(Vec::new());

    /// The faults of the files under `dir`, which every file opened there
    /// from now on writes through.
    pub(crate) fn arm(dir: &Path) -> Arc<Faults> {
        let faults = Arc::new(Faults::default());
        ARMED.lock().push((dir.to_path_buf(), Arc::clone(&faults)));
        faults
    }

    pub(super) fn armed_for(file: &Path) -> Option<Arc<Faults>> {
        let dir = file.parent()?;
        ARMED
            .lock()
            .iter()
            .find(|(armed, _)| armed == dir)
            .map(|(_, faults)| Arc::clone(faults))
    }
}
