//! Single flight inside one process: of the tasks that miss the same key
//! at the same time, one (the leader) loads it and the others wait for
//! its outcome.
//!
//! A leader that is cancelled (its future dropped) or panics never leaves
//! its waiters hanging: its [`Leader`] guard's `Drop` tells them the load
//! was abandoned, and they start over (one of them becoming the leader).

use crate::{Bytes, Error, Result};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::watch;

/// The loads in progress, by key.
#[derive(Default)]
pub(crate) struct Flights {
    loading: Mutex<HashMap<String, Flight>>,
    /// Tells flights of one key apart, so a finished leader removes its
    /// own entry and never a newer one.
    next_id: AtomicU64,
}

struct Flight {
    id: u64,
    outcome: watch::Receiver<State>,
}

#[derive(Clone)]
enum State {
    Loading,
    Done(Result<Bytes, Arc<Error>>),
    Abandoned,
}

/// What joining a key's flight made of the caller.
pub(crate) enum Joined<'a> {
    /// Nobody was loading the key: the caller loads it and must report.
    Leader(Leader<'a>),
    /// Somebody is: wait for them.
    Waiter(Waiter),
}

impl Flights {
    /// Joins the flight of `key`, starting one if there is none.
    pub(crate) fn join(&self, key: &str) -> Joined<'_> {
        let mut loading = self.loading.lock();
        if let Some(flight) = loading.get(key) {
            return Joined::Waiter(Waiter(flight.outcome.clone()));
        }
        let (sender, outcome) = watch::channel(State::Loading);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        loading.insert(key.to_owned(), Flight { id, outcome });
        Joined::Leader(Leader {
            flights: self,
            key: key.to_owned(),
            id,
            sender,
            reported: false,
        })
    }

    /// Starts a flight of `key` only if none is in progress (a background
    /// refresh never waits behind a load).
    pub(crate) fn lead(&self, key: &str) -> Option<Leader<'_>> {
        match self.join(key) {
            Joined::Leader(leader) => Some(leader),
            Joined::Waiter(_) => None,
        }
    }

    /// How many loads are in progress (tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.loading.lock().len()
    }

    fn remove(&self, key: &str, id: u64) {
        let mut loading = self.loading.lock();
        if loading.get(key).is_some_and(|flight| flight.id == id) {
            loading.remove(key);
        }
    }
}

/// The task loading a key. Report the outcome with [`Leader::finish`];
/// dropping it unreported tells the waiters to start over.
pub(crate) struct Leader<'a> {
    flights: &'a Flights,
    key: String,
    id: u64,
    sender: watch::Sender<State>,
    reported: bool,
}

impl Leader<'_> {
    /// Hands `outcome` to every waiter and ends the flight. Callers that
    /// come later look in the store again.
    pub(crate) fn finish(mut self, outcome: &Result<Bytes>) {
        // Out of the map first: a caller arriving now reads the store,
        // where a successful load is already written.
        self.flights.remove(&self.key, self.id);
        let shared = match outcome {
            Ok(value) => Ok(value.clone()),
            Err(e) => Err(Arc::new(e.duplicate())),
        };
        self.sender.send_replace(State::Done(shared));
        self.reported = true;
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        if !self.reported {
            self.flights.remove(&self.key, self.id);
            self.sender.send_replace(State::Abandoned);
        }
    }
}

/// A task waiting for another's load.
pub(crate) struct Waiter(watch::Receiver<State>);

impl Waiter {
    /// The leader's outcome, or `None` if it gave up (then start over).
    pub(crate) async fn outcome(mut self) -> Option<Result<Bytes>> {
        let state = self
            .0
            .wait_for(|state| !matches!(state, State::Loading))
            .await
            .ok()?
            .clone();
        match state {
            State::Done(Ok(value)) => Some(Ok(value)),
            State::Done(Err(e)) => Some(Err(e.duplicate())),
            State::Loading | State::Abandoned => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waiters_get_the_leaders_outcome() {
        let flights = Flights::default();
        let Joined::Leader(leader) = flights.join("k") else {
            panic!("the first caller leads")
        };
        let Joined::Waiter(waiter) = flights.join("k") else {
            panic!("the second caller waits")
        };
        leader.finish(&Ok(Bytes::from_static(b"v")));
        assert_eq!(flights.len(), 0);
        assert_eq!(&waiter.outcome().await.unwrap().unwrap()[..], b"v");
        assert!(
            matches!(flights.join("k"), Joined::Leader(_)),
            "a new flight after the end"
        );
    }

    #[tokio::test]
    async fn a_dropped_leader_releases_its_waiters() {
        let flights = Flights::default();
        let leader = flights.lead("k").unwrap();
        let Joined::Waiter(waiter) = flights.join("k") else {
            panic!("waits")
        };
        drop(leader);
        assert!(waiter.outcome().await.is_none());
        assert_eq!(flights.len(), 0);
    }

    #[tokio::test]
    async fn errors_reach_every_waiter() {
        let flights = Flights::default();
        let leader = flights.lead("k").unwrap();
        let waiters: Vec<_> = (0..3)
            .map(|_| match flights.join("k") {
                Joined::Waiter(w) => w,
                Joined::Leader(_) => panic!("waits"),
            })
            .collect();
        leader.finish(&Err(Error::Closed));
        for waiter in waiters {
            assert!(matches!(waiter.outcome().await, Some(Err(Error::Closed))));
        }
    }

    #[test]
    fn an_old_leader_never_removes_a_newer_flight() {
        let flights = Flights::default();
        let old = flights.lead("k").unwrap();
        flights.remove("k", old.id);
        let _new = flights.lead("k").unwrap();
        drop(old);
        assert_eq!(flights.len(), 1);
    }
}
