//! [`TypedCache`]: a [`Cache`] whose values are `T`s.

use super::Cache;
use crate::typed::{decode, encode, Codec, Json};
use crate::{Bytes, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::future::Future;
use std::marker::PhantomData;
use std::time::Duration;

/// A [`Cache`] whose values are `T`s encoded with `C` (JSON by default).
/// Made by [`Cache::typed`] or [`TypedCache::new`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> kvs::Result<()> {
/// use std::time::Duration;
/// use kvs::cache::Cache;
///
/// #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
/// struct Weather { city: String, celsius: f32 }
///
/// let cache = Cache::new(kvs::open(&kvs::Config::from_yaml("type: memory")?).await?);
/// let weather = cache.typed::<Weather>();
/// let today = weather
///     .get_or_set("weather:oslo", Some(Duration::from_secs(600)), || async {
///         Ok::<_, std::io::Error>(Weather { city: "Oslo".into(), celsius: -3.5 })
///     })
///     .await?;
/// assert_eq!(today.celsius, -3.5);
/// # Ok(())
/// # }
/// ```
pub struct TypedCache<T, C = Json> {
    cache: Cache,
    // `fn() -> T`: holds no `T`, so it is `Send`/`Sync` whatever `T` is.
    _values: PhantomData<fn() -> (T, C)>,
}

impl<T, C> Clone for TypedCache<T, C> {
    fn clone(&self) -> Self {
        TypedCache::new(self.cache.clone())
    }
}

impl<T, C> std::fmt::Debug for TypedCache<T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedCache")
            .field("type", &std::any::type_name::<T>())
            .field("cache", &self.cache)
            .finish()
    }
}

impl<T, C> TypedCache<T, C> {
    /// `cache`, seen as holding `T`s encoded with `C`.
    pub fn new(cache: Cache) -> Self {
        TypedCache {
            cache,
            _values: PhantomData,
        }
    }

    /// The untyped cache.
    pub fn cache(&self) -> &Cache {
        &self.cache
    }
}

impl<T, C> TypedCache<T, C>
where
    T: Serialize + DeserializeOwned + Send + 'static,
    C: Codec,
{
    /// [`Cache::get`], decoded.
    pub async fn get(&self, key: &str) -> Result<T> {
        decode::<T, C>(key, &self.cache.get(key).await?)
    }

    /// [`Cache::set`], encoded.
    pub async fn set(&self, key: &str, value: &T, ttl: Option<Duration>) -> Result<()> {
        self.cache.set(key, &encode::<T, C>(key, value)?, ttl).await
    }

    /// [`Cache::set_tagged`], encoded.
    pub async fn set_tagged(
        &self,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
        tags: &[&str],
    ) -> Result<()> {
        let bytes = encode::<T, C>(key, value)?;
        self.cache.set_tagged(key, &bytes, ttl, tags).await
    }

    /// [`Cache::get_or_set`] of `T`s.
    pub async fn get_or_set<E, F, Fut>(
        &self,
        key: &str,
        ttl: Option<Duration>,
        loader: F,
    ) -> Result<T>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = std::result::Result<T, E>> + Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    {
        self.get_or_set_tagged(key, ttl, &[], loader).await
    }

    /// [`Cache::get_or_set_tagged`] of `T`s.
    pub async fn get_or_set_tagged<E, F, Fut>(
        &self,
        key: &str,
        ttl: Option<Duration>,
        tags: &[&str],
        loader: F,
    ) -> Result<T>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = std::result::Result<T, E>> + Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    {
        let owned_key = key.to_owned();
        let encoded = move || async move {
            let value = loader().await.map_err(Into::into)?;
            let bytes = encode::<T, C>(&owned_key, &value)?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync + 'static>>(Bytes::from(bytes))
        };
        let bytes = self
            .cache
            .get_or_set_tagged(key, ttl, tags, encoded)
            .await?;
        decode::<T, C>(key, &bytes)
    }
}
