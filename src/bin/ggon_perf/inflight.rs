//! Outstanding queries of one socket or connection, by DNS message ID.
//!
//! Fixed arrays over the whole 16-bit ID space plus a dense list of the IDs
//! in flight (with back-pointers), so insert, lookup and removal are O(1) and
//! the periodic timeout scan only walks what is actually outstanding.
//! Everything is allocated once.

pub const IDS: usize = 1 << 16;
const FREE: u32 = u32::MAX;

pub struct InFlight {
    sent_at: Box<[u64]>,
    query: Box<[u32]>,
    /// Index into `dense`, or FREE.
    pos: Box<[u32]>,
    dense: Box<[u16]>,
    len: usize,
    next_id: u16,
}

impl Default for InFlight {
    fn default() -> Self {
        Self::new()
    }
}

impl InFlight {
    pub fn new() -> Self {
        InFlight {
            sent_at: vec![0; IDS].into_boxed_slice(),
            query: vec![0; IDS].into_boxed_slice(),
            pos: vec![FREE; IDS].into_boxed_slice(),
            dense: vec![0; IDS].into_boxed_slice(),
            len: 0,
            next_id: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// The next free ID, in sequence. The caller must keep `len() < IDS`.
    #[inline]
    pub fn alloc_id(&mut self) -> u16 {
        debug_assert!(self.len < IDS);
        loop {
            let id = self.next_id;
            self.next_id = id.wrapping_add(1);
            if self.pos[id as usize] == FREE {
                return id;
            }
        }
    }

    #[inline]
    pub fn insert(&mut self, id: u16, query: u32, sent_at: u64) {
        let i = id as usize;
        debug_assert_eq!(self.pos[i], FREE);
        self.sent_at[i] = sent_at;
        self.query[i] = query;
        self.pos[i] = self.len as u32;
        self.dense[self.len] = id;
        self.len += 1;
    }

    /// `(query index, send time)` of an outstanding ID.
    #[inline]
    pub fn get(&self, id: u16) -> Option<(u32, u64)> {
        let i = id as usize;
        (self.pos[i] != FREE).then(|| (self.query[i], self.sent_at[i]))
    }

    #[inline]
    pub fn remove(&mut self, id: u16) {
        let i = id as usize;
        let p = self.pos[i];
        if p == FREE {
            return;
        }
        self.len -= 1;
        let last = self.dense[self.len];
        self.dense[p as usize] = last;
        self.pos[last as usize] = p;
        self.pos[i] = FREE;
    }

    /// Removes every query sent at or before `cutoff`; returns how many.
    pub fn expire(&mut self, cutoff: u64) -> usize {
        let mut removed = 0;
        let mut k = 0;
        while k < self.len {
            let id = self.dense[k];
            if self.sent_at[id as usize] <= cutoff {
                self.remove(id); // moves the last entry into slot k
                removed += 1;
            } else {
                k += 1;
            }
        }
        removed
    }

    /// Removes everything; returns how many were outstanding.
    pub fn clear(&mut self) -> usize {
        let n = self.len;
        for k in 0..n {
            self.pos[self.dense[k] as usize] = FREE;
        }
        self.len = 0;
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_get_remove_expire() {
        let mut f = InFlight::new();
        let a = f.alloc_id();
        f.insert(a, 7, 100);
        let b = f.alloc_id();
        assert_ne!(a, b);
        f.insert(b, 8, 200);
        let c = f.alloc_id();
        f.insert(c, 9, 300);
        assert_eq!(f.len(), 3);
        assert_eq!(f.get(b), Some((8, 200)));
        f.remove(a);
        assert_eq!(f.get(a), None);
        assert_eq!(f.get(c), Some((9, 300)));
        assert_eq!(f.expire(250), 1, "b expires");
        assert_eq!(f.get(b), None);
        assert_eq!(f.get(c), Some((9, 300)));
        assert_eq!(f.len(), 1);
        assert_eq!(f.clear(), 1);
        assert_eq!(f.get(c), None);
    }

    #[test]
    fn ids_wrap_and_skip_outstanding() {
        let mut f = InFlight::new();
        let first = f.alloc_id();
        f.insert(first, 0, 0);
        for _ in 0..IDS - 2 {
            let id = f.alloc_id();
            f.insert(id, 0, 1);
            f.remove(id);
        }
        // The counter has come round: `first` is still outstanding, so skipped.
        let id = f.alloc_id();
        assert_eq!(id, first.wrapping_sub(1));
        let id2 = f.alloc_id();
        assert_eq!(id2, first.wrapping_add(1));
    }
}
