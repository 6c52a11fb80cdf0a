//! Where a publisher should connect: rendezvous (highest-random-weight) hashing of the stream
//! over the fleet's healthy, non-draining nodes with room. Each (node, stream) pair gets a
//! weight; the stream goes to the node with the highest. So a stream lands on the same node as
//! long as that node is there, and adding or removing a node moves only the streams whose
//! highest weight it has (about 1/n of them), unlike `hash(userId) % n`, which moves almost
//! every stream.
//!
//! The weight is public so the cloud can compute placement itself: the first 8 bytes,
//! big-endian, of SHA-256 over `{nodeId}\n{userId}/{streamId}` (the userId decoded, as in the
//! API). Ties, which need equal hashes, go to the smaller node id.
//!
//! Pure: the nodes are passed in; nothing here talks to Redis.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// A node as it announces itself to the fleet (what membership stores).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeInfo {
    pub id: String,
    /// Where publishers connect: `rtmp://host:port` (the `/live/{userId}/{streamId}` path is
    /// appended).
    pub rtmp_url: String,
    pub rtmps_url: Option<String>,
    /// Where other nodes (and viewers, through the CDN) reach this node's origin.
    pub http_url: String,
    pub state: NodeState,
    /// Streams it takes at most (`fleet.max_streams`; 0 = no cap).
    pub max_streams: u64,
    /// Its load when it last announced itself.
    pub streams: u64,
    pub ingest_bps: u64,
    pub viewers: u64,
}

/// Whether a node takes new streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    Active,
    /// Finishing its streams before it stops (rolling upgrade): placement skips it.
    Draining,
}

impl NodeInfo {
    /// True when placement may send a new stream here.
    pub fn takes_streams(&self) -> bool {
        self.state == NodeState::Active
            && (self.max_streams == 0 || self.streams < self.max_streams)
    }
}

/// The rendezvous weight of `stream` (`{userId}/{streamId}`, decoded) on `node_id`.
pub fn weight(node_id: &str, stream: &str) -> u64 {
    let mut h = Sha256::new();
    h.update(node_id.as_bytes());
    h.update(b"\n");
    h.update(stream.as_bytes());
    let d = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&d[..8]);
    u64::from_be_bytes(first)
}

/// The node a new publish of `stream` should go to: the highest weight among the nodes that
/// take streams; `None` when no node does.
pub fn place<'a>(nodes: &'a [NodeInfo], stream: &str) -> Option<&'a NodeInfo> {
    nodes.iter().filter(|n| n.takes_streams()).max_by(|a, b| {
        weight(&a.id, stream)
            .cmp(&weight(&b.id, stream))
            // The smaller id wins a tie: max_by keeps the last maximum, so reverse.
            .then_with(|| b.id.cmp(&a.id))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn node(id: &str) -> NodeInfo {
        NodeInfo {
            id: id.into(),
            rtmp_url: format!("rtmp://{id}:1935"),
            rtmps_url: None,
            http_url: format!("http://{id}:8888"),
            state: NodeState::Active,
            max_streams: 0,
            streams: 0,
            ingest_bps: 0,
            viewers: 0,
        }
    }

    fn streams(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("user{i}@example.com/glasses"))
            .collect()
    }

    fn assignment(nodes: &[NodeInfo], streams: &[String]) -> HashMap<String, String> {
        streams
            .iter()
            .map(|s| (s.clone(), place(nodes, s).unwrap().id.clone()))
            .collect()
    }

    #[test]
    fn the_weight_is_the_documented_hash() {
        // sha256("node-1\nalice@example.com/m1"), first 8 bytes: what the cloud computes.
        let d = Sha256::digest(b"node-1\nalice@example.com/m1");
        let want = u64::from_be_bytes(d[..8].try_into().unwrap());
        assert_eq!(weight("node-1", "alice@example.com/m1"), want);
    }

    #[test]
    fn three_hundred_streams_spread_evenly_and_a_removed_node_moves_only_its_share() {
        let nodes: Vec<NodeInfo> = ["node-1", "node-2", "node-3"].map(node).to_vec();
        let s = streams(300);
        let before = assignment(&nodes, &s);
        let mut count: HashMap<&str, usize> = HashMap::new();
        for n in before.values() {
            *count.entry(n.as_str()).or_default() += 1;
        }
        for n in &nodes {
            let c = count[n.id.as_str()];
            assert!((75..=125).contains(&c), "{}: {c} of 300 ({count:?})", n.id);
        }
        // Node 2 goes away: only its streams move, spread over the other two.
        let without: Vec<NodeInfo> = nodes.iter().filter(|n| n.id != "node-2").cloned().collect();
        let after = assignment(&without, &s);
        let moved: Vec<&String> = s.iter().filter(|x| before[*x] != after[*x]).collect();
        assert_eq!(moved.len(), count["node-2"]);
        assert!(moved.iter().all(|x| before[*x] == "node-2"));
        // A fourth node takes about a quarter, all from the others, nothing else moves.
        let mut four = nodes.clone();
        four.push(node("node-4"));
        let grown = assignment(&four, &s);
        let moved: Vec<&String> = s.iter().filter(|x| before[*x] != grown[*x]).collect();
        assert!(moved.iter().all(|x| grown[*x] == "node-4"));
        assert!((45..=105).contains(&moved.len()), "{} moved", moved.len());
    }

    #[test]
    fn draining_and_full_nodes_take_nothing_new() {
        let mut nodes: Vec<NodeInfo> = ["a", "b", "c"].map(node).to_vec();
        nodes[0].state = NodeState::Draining;
        nodes[1].max_streams = 10;
        nodes[1].streams = 10;
        for s in streams(50) {
            assert_eq!(place(&nodes, &s).unwrap().id, "c");
        }
        nodes[2].state = NodeState::Draining;
        assert!(place(&nodes, "x/y").is_none());
        assert!(place(&[], "x/y").is_none());
    }

    proptest! {
        /// The answer depends only on the set of eligible nodes, not their order.
        #[test]
        fn placement_ignores_order(ids in proptest::collection::btree_set("[a-z]{1,6}", 1..8), stream in "[a-z@.]{1,20}/[a-z0-9]{1,8}") {
            let nodes: Vec<NodeInfo> = ids.iter().map(|i| node(i)).collect();
            let mut reversed = nodes.clone();
            reversed.reverse();
            prop_assert_eq!(&place(&nodes, &stream).unwrap().id, &place(&reversed, &stream).unwrap().id);
        }
    }
}
