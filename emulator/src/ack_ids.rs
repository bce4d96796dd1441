//! The ackIds a connection completed successfully, remembered for `Duplicate` answers: the most
//! recent [`AckIds::limit`] ids in the order they succeeded (the oldest is forgotten first).
//!
//! Clients number their ackIds upwards one by one, so the ids are kept as runs of consecutive
//! ids: while every new id is larger than all before it, the runs are sorted and membership is a
//! comparison with the last id (or a binary search), and memory stays a few words however many
//! ids are remembered. The first id that is not larger than every remembered one switches to a
//! hash set holding every id; the runs still give the order for forgetting.

use std::collections::{HashSet, VecDeque};

pub struct AckIds {
    limit: usize,
    /// Remembered ids in insertion order, as `(first, count)` runs of consecutive ids.
    runs: VecDeque<(u64, u64)>,
    /// Number of remembered ids.
    len: usize,
    /// Every remembered id, once ids stopped arriving in increasing order.
    set: Option<HashSet<u64>>,
}

impl AckIds {
    pub fn new(limit: usize) -> AckIds {
        AckIds {
            limit,
            runs: VecDeque::new(),
            len: 0,
            set: None,
        }
    }

    /// Whether `id` is remembered.
    pub fn contains(&self, id: u64) -> bool {
        if let Some(set) = &self.set {
            return set.contains(&id);
        }
        match self.runs.back() {
            None => false,
            Some(&(first, count)) if id >= first => id - first < count,
            Some(_) => {
                // Sorted, disjoint runs: the last run starting at or before `id`.
                let after = self.runs.partition_point(|&(first, _)| first <= id);
                after > 0 && {
                    let (first, count) = self.runs[after - 1];
                    id - first < count
                }
            }
        }
    }

    /// Remembers `id` (no-op when it already is), forgetting the oldest beyond the limit.
    pub fn insert(&mut self, id: u64) {
        if self.contains(id) {
            return;
        }
        if let Some(set) = &mut self.set {
            set.insert(id);
        } else if let Some(&(first, count)) = self.runs.back() {
            if id < first || id - first < count {
                // Not increasing: from now on membership is looked up in a set.
                let mut set: HashSet<u64> = self
                    .runs
                    .iter()
                    .flat_map(|&(first, count)| (0..count).map(move |i| first + i))
                    .collect();
                set.insert(id);
                self.set = Some(set);
            }
        }
        match self.runs.back_mut() {
            Some((first, count)) if id.checked_sub(*first) == Some(*count) => *count += 1,
            _ => self.runs.push_back((id, 1)),
        }
        self.len += 1;
        while self.len > self.limit {
            self.forget_oldest();
        }
    }

    fn forget_oldest(&mut self) {
        let Some((first, count)) = self.runs.front_mut() else {
            return;
        };
        let oldest = *first;
        *first += 1;
        *count -= 1;
        if *count == 0 {
            self.runs.pop_front();
        }
        self.len -= 1;
        if let Some(set) = &mut self.set {
            set.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plain model: a set plus the insertion order.
    struct Model {
        limit: usize,
        set: HashSet<u64>,
        order: VecDeque<u64>,
    }

    impl Model {
        fn insert(&mut self, id: u64) {
            if self.set.insert(id) {
                self.order.push_back(id);
                if self.order.len() > self.limit {
                    let old = self.order.pop_front().unwrap();
                    self.set.remove(&old);
                }
            }
        }
    }

    fn check(ids: &[u64], limit: usize) {
        let mut a = AckIds::new(limit);
        let mut m = Model {
            limit,
            set: HashSet::new(),
            order: VecDeque::new(),
        };
        for &id in ids {
            a.insert(id);
            m.insert(id);
            assert_eq!(a.len, m.order.len());
            for probe in 0..=70 {
                assert_eq!(a.contains(probe), m.set.contains(&probe), "probe {probe}");
            }
        }
    }

    #[test]
    fn increasing_ids_are_remembered_and_forgotten_oldest_first() {
        let ids: Vec<u64> = (1..=30).chain(35..=40).chain([50, 52, 60]).collect();
        check(&ids, 8);
        check(&ids, 100);
        let mut a = AckIds::new(3);
        for id in [1, 2, 3, 10, 11] {
            a.insert(id);
        }
        assert!(!a.contains(2) && a.contains(3) && a.contains(10) && a.contains(11));
        assert!(a.set.is_none());
    }

    #[test]
    fn ids_out_of_order_behave_like_a_set_with_insertion_order() {
        let mut x: u64 = 7;
        let mut ids = Vec::new();
        for _ in 0..400 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ids.push((x >> 33) % 64);
        }
        check(&ids, 10);
        check(&ids, 40);
        check(&[5, 6, 7, 3, 8, 9, 3, 4, 1], 4);
        check(&[0, 0, 1, 1, 0], 2);
        let mut a = AckIds::new(4);
        for id in [u64::MAX - 1, u64::MAX, 3, u64::MAX] {
            a.insert(id);
        }
        assert!(a.contains(u64::MAX) && a.contains(u64::MAX - 1) && a.contains(3));
    }
}
