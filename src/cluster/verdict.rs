//! The quorum rule, as a pure function: a target is down only when enough
//! live nodes see it down, so one node with a broken link cannot fail a
//! service over by itself.

use std::collections::BTreeMap;

/// The agreed verdict on one target from the votes of the live nodes
/// (a node's vote: None while it has no verdict of its own yet).
///
/// Down when at least `needed` nodes say down. Otherwise up when at least
/// one node says up (the failure is not agreed). Otherwise unknown (no
/// node has a verdict yet): the policy then keeps the current answer.
pub fn agree(votes: &BTreeMap<String, Option<bool>>, needed: usize) -> Option<bool> {
    let needed = needed.max(1);
    let down = votes.values().filter(|v| **v == Some(false)).count();
    let up = votes.values().filter(|v| **v == Some(true)).count();
    if down >= needed {
        Some(false)
    } else if up > 0 {
        Some(true)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Quorum;

    fn votes(v: &[Option<bool>]) -> BTreeMap<String, Option<bool>> {
        v.iter()
            .enumerate()
            .map(|(i, x)| (format!("n{i}"), *x))
            .collect()
    }

    #[test]
    fn one_node_that_sees_everything_down_is_outvoted() {
        let m = Quorum::Majority.needed(3);
        assert_eq!(m, 2);
        assert_eq!(
            agree(&votes(&[Some(false), Some(true), Some(true)]), m),
            Some(true)
        );
        assert_eq!(
            agree(&votes(&[Some(false), Some(false), Some(true)]), m),
            Some(false)
        );
        assert_eq!(agree(&votes(&[Some(false), None, None]), m), None);
        assert_eq!(agree(&votes(&[None, None, None]), m), None);
    }

    #[test]
    fn a_dead_nodes_vote_is_gone_and_the_majority_follows_the_live_count() {
        // Two live nodes: both must see it down.
        let m = Quorum::Majority.needed(2);
        assert_eq!(m, 2);
        assert_eq!(agree(&votes(&[Some(false), Some(true)]), m), Some(true));
        assert_eq!(agree(&votes(&[Some(false), Some(false)]), m), Some(false));
        // One live node decides alone (it is all that is left).
        assert_eq!(
            agree(&votes(&[Some(false)]), Quorum::Majority.needed(1)),
            Some(false)
        );
    }

    #[test]
    fn n_of_m_vantage_points() {
        let q = Quorum::Count(1).needed(3);
        assert_eq!(
            agree(&votes(&[Some(false), Some(true), Some(true)]), q),
            Some(false)
        );
        let q = Quorum::Count(3).needed(3);
        assert_eq!(
            agree(&votes(&[Some(false), Some(false), Some(true)]), q),
            Some(true)
        );
        // More than are alive can never be reached: never down, and with
        // nobody seeing it up, no verdict (the current answer stays).
        let q = Quorum::Count(4).needed(3);
        assert_eq!(
            agree(&votes(&[Some(false), Some(false), Some(false)]), q),
            None
        );
    }
}
