//! A small blocking connection pool: at most `max` connections, made on demand, reused.
use cairn_core::Result;
use std::sync::{Condvar, Mutex};

type Maker<C> = Box<dyn Fn() -> Result<C> + Send + Sync>;

pub(crate) struct Pool<C> {
    state: Mutex<(Vec<C>, usize)>,
    freed: Condvar,
    make: Maker<C>,
    max: usize,
}

pub(crate) struct Pooled<'a, C> {
    pool: &'a Pool<C>,
    conn: Option<C>,
    broken: bool,
}

impl<C> Pool<C> {
    pub fn new(max: usize, make: Maker<C>) -> Self {
        Pool {
            state: Mutex::new((Vec::new(), 0)),
            freed: Condvar::new(),
            make,
            max: max.max(1),
        }
    }

    pub fn get(&self) -> Result<Pooled<'_, C>> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(conn) = state.0.pop() {
                return Ok(Pooled {
                    pool: self,
                    conn: Some(conn),
                    broken: false,
                });
            }
            if state.1 < self.max {
                state.1 += 1;
                drop(state);
                return match (self.make)() {
                    Ok(conn) => Ok(Pooled {
                        pool: self,
                        conn: Some(conn),
                        broken: false,
                    }),
                    Err(e) => {
                        self.state.lock().unwrap_or_else(|p| p.into_inner()).1 -= 1;
                        self.freed.notify_one();
                        Err(e)
                    }
                };
            }
            state = self.freed.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }
}

impl<C> Pooled<'_, C> {
    pub fn conn(&mut self) -> &mut C {
        self.conn
            .as_mut()
            .expect("a pooled connection is present until drop")
    }
    /// Marks the connection unusable so it is dropped instead of reused.
    pub fn mark_broken(&mut self) {
        self.broken = true;
    }
}

impl<C> Drop for Pooled<'_, C> {
    fn drop(&mut self) {
        let mut state = self.pool.state.lock().unwrap_or_else(|p| p.into_inner());
        match self.conn.take() {
            Some(conn) if !self.broken => state.0.push(conn),
            _ => state.1 -= 1,
        }
        drop(state);
        self.pool.freed.notify_one();
    }
}
