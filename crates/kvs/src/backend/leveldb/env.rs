//! The file system as rusty-leveldb sees it: [`PosixDiskEnv`], except that
//! written files sync their data on flush when asked to.

use rusty_leveldb::env::{Env, FileLock, Logger, RandomAccess};
use rusty_leveldb::{PosixDiskEnv, Status};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// `PosixDiskEnv` whose written files `fdatasync` when flushed, if `sync`.
///
/// rusty-leveldb flushes its log after a write with `sync = true`; with the
/// plain `PosixDiskEnv` that only empties a user-space buffer.
pub(super) struct SyncingEnv {
    pub(super) inner: PosixDiskEnv,
    pub(super) sync: bool,
}

/// A file that syncs its data to disk on `flush`.
struct SyncOnFlush {
    file: BufWriter<File>,
    sync: bool,
}

impl Write for SyncOnFlush {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()?;
        if self.sync {
            self.file.get_ref().sync_data()?;
        }
        Ok(())
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
        Ok(Box::new(SyncOnFlush {
            file: BufWriter::new(file),
            sync: self.sync,
        }))
    }
    fn open_appendable_file(&self, p: &Path) -> rusty_leveldb::Result<Box<dyn Write>> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .map_err(|e| io_status("open (append)", p, e))?;
        Ok(Box::new(SyncOnFlush {
            file: BufWriter::new(file),
            sync: self.sync,
        }))
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
