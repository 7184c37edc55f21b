//! The Redis store: keys `BUCKET:KEY` in one Redis database, through a connection manager
//! that reconnects on its own. Increment is `INCRBY`; compare-and-swap is a Lua script, so both
//! are atomic across every process sharing the server.
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;

use crate::backend::{Backend, BoxFuture, KeyPage, LIST_PAGE_SIZE, StoreError, StoreResult};

/// Sets `KEYS[1]` to `ARGV[3]` if its value is `ARGV[2]` (`ARGV[1] == "1"`) or it is absent
/// (`ARGV[1] == "0"`). Returns 1 if it did.
const CAS_SCRIPT: &str = r#"
local current = redis.call('GET', KEYS[1])
if ARGV[1] == '1' then
  if current ~= ARGV[2] then return 0 end
elseif current then
  return 0
end
redis.call('SET', KEYS[1], ARGV[3])
return 1
"#;

/// A store in a Redis server (`type = "redis"`).
pub struct RedisStore {
    name: String,
    url: String,
    client: redis::Client,
    connection: OnceCell<ConnectionManager>,
    cas: redis::Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore").field("name", &self.name).field("url", &self.url).finish()
    }
}

impl RedisStore {
    /// The store `name` (for messages) at `url` (`redis://[user:password@]host[:port][/db]`).
    /// Nothing is connected until the first operation.
    pub fn new(name: impl Into<String>, url: &str) -> Result<Self, StoreError> {
        let name = name.into();
        let shown = redact(url);
        let client = redis::Client::open(url)
            .map_err(|e| StoreError::new(format!("redis store `{name}`: invalid url `{shown}`: {e}")))?;
        Ok(RedisStore { name, url: shown, client, connection: OnceCell::new(), cas: redis::Script::new(CAS_SCRIPT) })
    }

    /// The URL, with any password replaced by `***`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The guest learns the store and the cause; the URL goes only to wharf's log.
    fn error(&self, e: redis::RedisError) -> StoreError {
        if e.is_connection_refusal() || e.is_connection_dropped() || e.is_timeout() || e.is_io_error() {
            tracing::error!(store = %self.name, url = %self.url, "key-value store unavailable: {e}");
        } else {
            tracing::debug!(store = %self.name, url = %self.url, "key-value store error: {e}");
        }
        StoreError::new(format!("redis store `{}`: {e}", self.name))
    }

    async fn connection(&self) -> StoreResult<ConnectionManager> {
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(1)
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(10)));
        let manager = self
            .connection
            .get_or_try_init(|| ConnectionManager::new_with_config(self.client.clone(), config))
            .await
            .map_err(|e| self.error(e))?;
        Ok(manager.clone())
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> StoreResult<T> {
        let mut connection = self.connection().await?;
        cmd.query_async(&mut connection).await.map_err(|e| self.error(e))
    }
}

fn redis_key(bucket: &str, key: &str) -> String {
    format!("{bucket}:{key}")
}

/// `redis://user:secret@host` -> `redis://user:***@host`, so logs and guests never see secrets.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            let masked = if userinfo.contains(':') { format!("{user}:***") } else { "***".to_owned() };
            format!("{scheme}://{masked}@{host}{path}")
        }
        None => url.to_owned(),
    }
}

impl Backend for RedisStore {
    fn get<'a>(&'a self, bucket: &'a str, key: &'a str) -> BoxFuture<'a, StoreResult<Option<Vec<u8>>>> {
        Box::pin(self.query(redis::cmd("GET").arg(redis_key(bucket, key)).clone()))
    }

    fn set<'a>(&'a self, bucket: &'a str, key: &'a str, value: &'a [u8]) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(self.query(redis::cmd("SET").arg(redis_key(bucket, key)).arg(value).clone()))
    }

    fn delete<'a>(&'a self, bucket: &'a str, key: &'a str) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            self.query::<i64>(redis::cmd("DEL").arg(redis_key(bucket, key)).clone()).await?;
            Ok(())
        })
    }

    fn exists<'a>(&'a self, bucket: &'a str, key: &'a str) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(self.query(redis::cmd("EXISTS").arg(redis_key(bucket, key)).clone()))
    }

    /// The cursor is Redis's `SCAN` cursor: a page may be empty while more follow, and a key
    /// written during the scan may be returned twice (Redis's own guarantees).
    fn list_keys<'a>(&'a self, bucket: &'a str, cursor: Option<&'a str>) -> BoxFuture<'a, StoreResult<KeyPage>> {
        Box::pin(async move {
            let start: u64 = match cursor {
                None => 0,
                Some(c) => c.parse().map_err(|_| StoreError::new(format!("invalid list-keys cursor `{c}`")))?,
            };
            let prefix = format!("{bucket}:");
            let (next, keys): (u64, Vec<String>) = self
                .query(
                    redis::cmd("SCAN")
                        .arg(start)
                        .arg("MATCH")
                        .arg(format!("{prefix}*"))
                        .arg("COUNT")
                        .arg(LIST_PAGE_SIZE)
                        .clone(),
                )
                .await?;
            let keys = keys.into_iter().filter_map(|k| k.strip_prefix(&prefix).map(str::to_owned)).collect();
            Ok(KeyPage { keys, cursor: (next != 0).then(|| next.to_string()) })
        })
    }

    fn increment<'a>(&'a self, bucket: &'a str, key: &'a str, delta: i64) -> BoxFuture<'a, StoreResult<i64>> {
        Box::pin(self.query(redis::cmd("INCRBY").arg(redis_key(bucket, key)).arg(delta).clone()))
    }

    fn compare_and_swap<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        expected: Option<&'a [u8]>,
        value: &'a [u8],
    ) -> BoxFuture<'a, StoreResult<bool>> {
        Box::pin(async move {
            let mut connection = self.connection().await?;
            let mut invocation = self.cas.key(redis_key(bucket, key));
            invocation.arg(if expected.is_some() { "1" } else { "0" }).arg(expected.unwrap_or_default()).arg(value);
            let swapped: i64 = invocation.invoke_async(&mut connection).await.map_err(|e| self.error(e))?;
            Ok(swapped == 1)
        })
    }

    fn get_many<'a>(&'a self, bucket: &'a str, keys: &'a [String]) -> BoxFuture<'a, StoreResult<Vec<Option<Vec<u8>>>>> {
        Box::pin(async move {
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            let mut cmd = redis::cmd("MGET");
            for key in keys {
                cmd.arg(redis_key(bucket, key));
            }
            self.query(cmd).await
        })
    }

    fn set_many<'a>(&'a self, bucket: &'a str, pairs: &'a [(String, Vec<u8>)]) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            if pairs.is_empty() {
                return Ok(());
            }
            let mut cmd = redis::cmd("MSET");
            for (key, value) in pairs {
                cmd.arg(redis_key(bucket, key)).arg(value.as_slice());
            }
            self.query(cmd).await
        })
    }

    fn delete_many<'a>(&'a self, bucket: &'a str, keys: &'a [String]) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            if keys.is_empty() {
                return Ok(());
            }
            let mut cmd = redis::cmd("DEL");
            for key in keys {
                cmd.arg(redis_key(bucket, key));
            }
            self.query::<i64>(cmd).await?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_redacted() {
        assert_eq!(super::redact("redis://127.0.0.1:6379/0"), "redis://127.0.0.1:6379/0");
        assert_eq!(super::redact("redis://u:pw@h:1/2"), "redis://u:***@h:1/2");
        assert_eq!(super::redact("rediss://:pw@h"), "rediss://:***@h");
        assert_eq!(super::redact("redis://token@h"), "redis://***@h");
    }
}
