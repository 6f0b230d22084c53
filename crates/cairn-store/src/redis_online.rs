//! The online store on Redis, for several processes sharing one store: a value per (project,
//! view, entity) under `cairn:online:{project}:{view}:{entity}`, holding `event:created:values`.
//! Writes go through one Lua script so an entity keeps its latest (event, created) row
//! atomically, whoever writes; reads are one `MGET`. The client speaks RESP2 over a small pool
//! of kept-alive connections (what these three commands need, nothing more).
use cairn_core::features::OnlineRow;
use cairn_core::{Error, OnlineStore, Result};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::Mutex;
use std::time::Duration;

/// Keeps each key's row unless the incoming (event, created) is not older; ARGV holds event,
/// created, values for each key in turn.
const UPSERT: &str = r#"
for i = 1, #KEYS do
  local event, created = tonumber(ARGV[3*i-2]), tonumber(ARGV[3*i-1])
  local current = redis.call('GET', KEYS[i])
  local write = true
  if current then
    local e, c = string.match(current, '^(%-?%d+):(%-?%d+):')
    e, c = tonumber(e), tonumber(c)
    if e > event or (e == event and c > created) then write = false end
  end
  if write then
    redis.call('SET', KEYS[i], ARGV[3*i-2] .. ':' .. ARGV[3*i-1] .. ':' .. ARGV[3*i])
  end
end
return #KEYS
"#;

/// Keys per command (bounded request size).
const BATCH: usize = 500;

/// One RESP reply (simple strings and integers are only ever shown in errors).
#[derive(Debug)]
#[allow(dead_code)]
enum Reply {
    Simple(String),
    Integer(i64),
    Bulk(Option<Vec<u8>>),
    Array(Vec<Reply>),
}

struct Connection {
    reader: BufReader<TcpStream>,
}

fn io(e: std::io::Error) -> Error {
    Error::Storage(format!("redis: {e}"))
}

impl Connection {
    fn open(addr: &str, db: u32) -> Result<Connection> {
        let stream = TcpStream::connect(addr).map_err(io)?;
        stream.set_nodelay(true).map_err(io)?;
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(io)?;
        let mut c = Connection {
            reader: BufReader::new(stream),
        };
        if db != 0 {
            c.call(&[b"SELECT", db.to_string().as_bytes()])?;
        }
        Ok(c)
    }

    fn call(&mut self, args: &[&[u8]]) -> Result<Reply> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        self.reader.get_mut().write_all(&out).map_err(io)?;
        self.read()
    }

    fn line(&mut self) -> Result<String> {
        let mut line = String::new();
        if self.reader.read_line(&mut line).map_err(io)? == 0 {
            return Err(Error::Storage("redis closed the connection".into()));
        }
        Ok(line.trim_end_matches("\r\n").to_string())
    }

    fn read(&mut self) -> Result<Reply> {
        let line = self.line()?;
        let (kind, rest) = line.split_at(1.min(line.len()));
        let number = || {
            rest.parse::<i64>()
                .map_err(|_| Error::Storage(format!("redis: unexpected reply {line:?}")))
        };
        match kind {
            "+" => Ok(Reply::Simple(rest.to_string())),
            "-" => Err(Error::Storage(format!("redis: {rest}"))),
            ":" => Ok(Reply::Integer(number()?)),
            "$" => {
                let n = number()?;
                if n < 0 {
                    return Ok(Reply::Bulk(None));
                }
                let mut buf = vec![0; n as usize + 2];
                std::io::Read::read_exact(&mut self.reader, &mut buf).map_err(io)?;
                buf.truncate(n as usize);
                Ok(Reply::Bulk(Some(buf)))
            }
            "*" => {
                let n = number()?;
                (0..n.max(0))
                    .map(|_| self.read())
                    .collect::<Result<_>>()
                    .map(Reply::Array)
            }
            _ => Err(Error::Storage(format!("redis: unexpected reply {line:?}"))),
        }
    }
}

/// Feature values on Redis.
pub struct RedisOnlineStore {
    addr: String,
    db: u32,
    idle: Mutex<Vec<Connection>>,
    script: String,
}

impl RedisOnlineStore {
    /// Connects to `redis://HOST[:PORT][/DB]` and loads the write script.
    pub fn open(url: &str) -> Result<RedisOnlineStore> {
        let rest = url
            .strip_prefix("redis://")
            .ok_or_else(|| Error::invalid(format!("{url}: not a redis:// URL")))?;
        let (hostport, db) = match rest.split_once('/') {
            Some((h, d)) if !d.is_empty() => (
                h,
                d.parse()
                    .map_err(|_| Error::invalid(format!("{url}: the database is a number")))?,
            ),
            Some((h, _)) => (h, 0),
            None => (rest, 0),
        };
        if hostport.contains('@') {
            return Err(Error::invalid(format!(
                "{url}: Redis with a password is not supported yet"
            )));
        }
        let addr = if hostport.contains(':') {
            hostport.to_string()
        } else {
            format!("{hostport}:6379")
        };
        let mut first = Connection::open(&addr, db)?;
        let script = match first.call(&[b"SCRIPT", b"LOAD", UPSERT.as_bytes()])? {
            Reply::Bulk(Some(sha)) => String::from_utf8_lossy(&sha).to_string(),
            other => return Err(Error::Storage(format!("redis: SCRIPT LOAD gave {other:?}"))),
        };
        Ok(RedisOnlineStore {
            addr,
            db,
            idle: Mutex::new(vec![first]),
            script,
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let taken = self.idle.lock().map(|mut v| v.pop()).unwrap_or(None);
        let mut c = match taken {
            Some(c) => c,
            None => Connection::open(&self.addr, self.db)?,
        };
        let out = f(&mut c);
        // A connection that failed mid-reply is dropped, not reused.
        if out.is_ok() {
            if let Ok(mut idle) = self.idle.lock() {
                idle.push(c);
            }
        }
        out
    }
}

fn key(project: &str, view: &str, entity: &str) -> String {
    format!("cairn:online:{project}:{view}:{entity}")
}

impl OnlineStore for RedisOnlineStore {
    fn write_online(&self, project: &str, view: &str, rows: &[OnlineRow]) -> Result<()> {
        for chunk in rows.chunks(BATCH) {
            let count = chunk.len().to_string();
            let mut args: Vec<Vec<u8>> = vec![
                b"EVALSHA".to_vec(),
                self.script.as_bytes().to_vec(),
                count.into_bytes(),
            ];
            args.extend(
                chunk
                    .iter()
                    .map(|r| key(project, view, &r.entity_key).into_bytes()),
            );
            for r in chunk {
                args.push(r.event_ms.to_string().into_bytes());
                args.push(r.created_ms.to_string().into_bytes());
                args.push(r.values.clone().into_bytes());
            }
            let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
            self.with(|c| c.call(&refs))?;
        }
        Ok(())
    }

    fn read_online(
        &self,
        project: &str,
        view: &str,
        keys: &[String],
    ) -> Result<Vec<Option<OnlineRow>>> {
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(BATCH) {
            let mut args: Vec<Vec<u8>> = vec![b"MGET".to_vec()];
            args.extend(chunk.iter().map(|k| key(project, view, k).into_bytes()));
            let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
            let Reply::Array(values) = self.with(|c| c.call(&refs))? else {
                return Err(Error::Storage("redis: MGET did not answer a list".into()));
            };
            for (entity, v) in chunk.iter().zip(values) {
                out.push(match v {
                    Reply::Bulk(Some(bytes)) => {
                        let text = String::from_utf8(bytes)
                            .map_err(|_| Error::Storage("redis: a value is not UTF-8".into()))?;
                        let mut parts = text.splitn(3, ':');
                        let (Some(e), Some(c), Some(values)) =
                            (parts.next(), parts.next(), parts.next())
                        else {
                            return Err(Error::Storage(format!(
                                "redis: malformed value of {entity}"
                            )));
                        };
                        Some(OnlineRow {
                            entity_key: entity.clone(),
                            values: values.to_string(),
                            event_ms: e
                                .parse()
                                .map_err(|_| Error::Storage("redis: bad event time".into()))?,
                            created_ms: c
                                .parse()
                                .map_err(|_| Error::Storage("redis: bad created time".into()))?,
                        })
                    }
                    _ => None,
                });
            }
        }
        Ok(out)
    }
}
