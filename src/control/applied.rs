//! The ids of recently applied messages, so a redelivery (an ack lost in a NATS
//! restart, say) is acknowledged again but not applied twice. Bounded: the oldest id
//! is forgotten first; JetStream redelivers within `ack_wait`, far inside the window.

use std::collections::{HashSet, VecDeque};

/// Ids kept: at ~60 bytes each, about 4 MiB.
pub const MAX_REMEMBERED: usize = 65_536;

#[derive(Default)]
pub struct Applied {
    set: HashSet<String>,
    order: VecDeque<String>,
}

impl Applied {
    pub fn contains(&self, id: &str) -> bool {
        self.set.contains(id)
    }

    pub fn insert(&mut self, id: &str) {
        if !self.set.insert(id.to_owned()) {
            return;
        }
        self.order.push_back(id.to_owned());
        while self.order.len() > MAX_REMEMBERED {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.order.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_remembers_recent() {
        let mut a = Applied::default();
        for i in 0..MAX_REMEMBERED + 10 {
            a.insert(&i.to_string());
        }
        a.insert("5000");
        assert_eq!(a.len(), MAX_REMEMBERED);
        assert!(!a.contains("0"));
        assert!(a.contains(&(MAX_REMEMBERED + 9).to_string()));
    }
}
