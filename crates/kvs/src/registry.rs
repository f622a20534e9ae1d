//! Files open in this process, so that opening one again shares it.
//!
//! LevelDB refuses a second open of a directory (its `LOCK` file), and two
//! SQLite write connections to one file would only contend for its lock;
//! so stores opened on the same path share one handle, which closes when
//! the last of them lets go.

use crate::{Error, Result};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Weak};

/// Open handles of type `T` by absolute path.
pub(crate) struct Registry<T> {
    open: Mutex<Option<HashMap<PathBuf, Weak<T>>>>,
}

impl<T> Registry<T> {
    pub(crate) const fn new() -> Registry<T> {
        Registry {
            open: Mutex::new(None),
        }
    }

    /// The handle open for `path`, or a new one from `open`.
    ///
    /// The registry stays locked while `open` runs, so two stores opening
    /// the same path at once never both open it.
    pub(crate) fn get_or_open(
        &self,
        path: &Path,
        open: impl FnOnce(&Path) -> Result<Arc<T>>,
    ) -> Result<Arc<T>> {
        let mut guard = self.open.lock();
        let handles = guard.get_or_insert_with(HashMap::new);
        if let Some(handle) = handles.get(path).and_then(Weak::upgrade) {
            return Ok(handle);
        }
        let handle = open(path)?;
        handles.retain(|_, h| h.strong_count() > 0);
        handles.insert(path.to_path_buf(), Arc::downgrade(&handle));
        Ok(handle)
    }
}

/// `path` made absolute, with symlinks resolved in the part that exists, so
/// that two spellings of one path share one handle. The path need not exist.
pub(crate) fn absolute(path: &Path, what: &str) -> Result<PathBuf> {
    let absolute = std::path::absolute(path)
        .map_err(|e| Error::config(format!("{what} {}: {e}", path.display())))?;
    let parts: Vec<Component<'_>> = absolute.components().collect();
    // Resolve the longest prefix that exists; what follows does not exist,
    // so it holds no symlinks, and `..` there can be applied lexically.
    for split in (1..=parts.len()).rev() {
        let Ok(mut resolved) = parts[..split].iter().collect::<PathBuf>().canonicalize() else {
            continue;
        };
        for part in &parts[split..] {
            match part {
                Component::ParentDir => {
                    resolved.pop();
                }
                Component::Normal(name) => resolved.push(name),
                _ => {}
            }
        }
        return Ok(resolved);
    }
    Ok(absolute)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_path_agree() {
        let dir = tempfile::tempdir().unwrap();
        let a = absolute(&dir.path().join("x/../y/kvs.db"), "path").unwrap();
        let b = absolute(&dir.path().join("y/kvs.db"), "path").unwrap();
        assert_eq!(a, b);
        assert!(a.is_absolute());
    }

    #[test]
    fn one_handle_per_path_until_dropped() {
        let registry: Registry<u32> = Registry::new();
        let path = Path::new("/tmp/some/path");
        let a = registry.get_or_open(path, |_| Ok(Arc::new(1))).unwrap();
        let b = registry.get_or_open(path, |_| Ok(Arc::new(2))).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        drop((a, b));
        assert_eq!(*registry.get_or_open(path, |_| Ok(Arc::new(3))).unwrap(), 3);
    }
}
