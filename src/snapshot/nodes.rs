//! The compiled nodes of one zone, keyed by lowercase wire name: a large
//! base map shared between snapshots and a small overlay of the nodes
//! compiled since the base was built.
//!
//! Why not one hash map: a remap recompiles a handful of nodes, but a new
//! snapshot needs its own map, and copying (then freeing) a map of 100,000
//! names took about 4 ms per remap, three quarters of the controller's
//! time (perf, `scripts/bench --scale`). With the overlay a remap copies
//! only the overlay; the base is folded in again once the overlay has
//! grown to a fraction of it, so lookups stay two hash probes at most and
//! the copy is paid once per many remaps. A persistent map (HAMT) would
//! avoid the fold but makes every query's lookup slower.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::Node;

type Map = FxHashMap<Arc<[u8]>, Arc<Node>>;

/// The overlay is folded into the base once it holds more than this many
/// nodes, or 1/32 of the base, whichever is more.
const MIN_FOLD: usize = 256;

#[derive(Debug, Default)]
pub(super) struct NodeMap {
    base: Arc<Map>,
    /// Nodes compiled after `base`; they win over the base's.
    overlay: Map,
}

impl From<Map> for NodeMap {
    fn from(base: Map) -> NodeMap {
        NodeMap {
            base: Arc::new(base),
            overlay: Map::default(),
        }
    }
}

impl NodeMap {
    #[inline]
    pub(super) fn get(&self, name: &[u8]) -> Option<&Arc<Node>> {
        if !self.overlay.is_empty() {
            if let Some(n) = self.overlay.get(name) {
                return Some(n);
            }
        }
        self.base.get(name)
    }

    /// The same nodes for the next version of the zone: the base shared,
    /// the overlay copied.
    pub(super) fn next(&self) -> NodeMap {
        NodeMap {
            base: self.base.clone(),
            overlay: self.overlay.clone(),
        }
    }

    pub(super) fn insert(&mut self, name: Arc<[u8]>, node: Arc<Node>) {
        self.overlay.insert(name, node);
    }

    /// Fold the overlay into a new base when it has grown too large
    /// (the one full copy, once per many changes).
    pub(super) fn settle(&mut self) {
        if self.overlay.len() <= MIN_FOLD.max(self.base.len() / 32) {
            return;
        }
        let mut base = (*self.base).clone();
        base.extend(self.overlay.drain());
        self.base = Arc::new(base);
    }

    /// The number of nodes in the overlay (tests).
    #[cfg(test)]
    pub(super) fn overlay_len(&self) -> usize {
        self.overlay.len()
    }
}

/// `nodes[name]` in tests.
#[cfg(test)]
impl std::ops::Index<&[u8]> for NodeMap {
    type Output = Arc<Node>;

    fn index(&self, name: &[u8]) -> &Arc<Node> {
        self.get(name).expect("no node of that name")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: usize) -> Arc<[u8]> {
        Arc::from(format!("n{i}").into_bytes())
    }

    #[test]
    fn versions_see_their_own_nodes_across_folds() {
        let base: Map = (0..1000)
            .map(|i| (key(i), Arc::new(Node::default())))
            .collect();
        let mut versions = vec![NodeMap::from(base)];
        let mut newest: Vec<Arc<Node>> = (0..1000)
            .map(|i| versions[0][&key(i)[..]].clone())
            .collect();
        let first = newest[0].clone();
        let mut folds = 0;
        for round in 0..600 {
            let mut next = versions.last().unwrap().next();
            let i = (round * 7) % 1000;
            let node = Arc::new(Node::default());
            next.insert(key(i), node.clone());
            let before = next.overlay_len();
            next.settle();
            folds += usize::from(next.overlay_len() < before);
            assert!(next.overlay_len() <= MIN_FOLD);
            newest[i] = node;
            for (j, n) in newest.iter().enumerate() {
                assert!(
                    Arc::ptr_eq(&next[&key(j)[..]], n),
                    "round {round}, node {j}"
                );
            }
            versions.push(next);
        }
        assert!(folds >= 2, "{folds} folds");
        // An old version still answers with what it had (round 0 replaced n0).
        assert!(Arc::ptr_eq(&versions[0][&key(0)[..]], &first));
        assert!(!Arc::ptr_eq(&versions[1][&key(0)[..]], &first));
        assert!(versions[0].get(b"nothere").is_none() && versions[600].get(b"nothere").is_none());
    }
}
