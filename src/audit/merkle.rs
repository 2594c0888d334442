//! Merkle trees over a checkpoint's records (RFC 6962 style: leaves and inner nodes
//! hashed with distinct prefixes, an odd node promoted unhashed), and inclusion proofs
//! that let one record be checked against a signed root without the rest of the log.

use ring::digest::{SHA256, digest};

pub type Hash = [u8; 32];

fn sha256(parts: &[&[u8]]) -> Hash {
    let mut data = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
    for part in parts {
        data.extend_from_slice(part);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, &data).as_ref());
    out
}

/// The leaf of a record: its MAC and its canonical encoding.
pub fn leaf(mac: &[u8], canonical: &[u8]) -> Hash {
    sha256(&[&[0u8], mac, canonical])
}

fn node(left: &Hash, right: &Hash) -> Hash {
    sha256(&[&[1u8], left, right])
}

/// The level above: pairs hashed together, an odd last node promoted as it is.
fn next_level(level: &[Hash]) -> Vec<Hash> {
    level
        .chunks(2)
        .map(|pair| match pair {
            [left, right] => node(left, right),
            [single] => *single,
            _ => [0u8; 32],
        })
        .collect()
}

/// The root over `leaves` (all-zero for none).
pub fn root(leaves: &[Hash]) -> Hash {
    if leaves.is_empty() {
        return [0u8; 32];
    }
    let mut level = leaves.to_vec();
    while level.len() > 1 {
        level = next_level(&level);
    }
    level[0]
}

/// One step of an inclusion proof: the sibling hash, and whether it sits on the left.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Step {
    #[serde(with = "hex_hash")]
    pub sibling: Hash,
    pub left: bool,
}

/// The proof that `leaves[index]` is in the tree of `leaves`.
pub fn proof(leaves: &[Hash], mut index: usize) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut level = leaves.to_vec();
    while level.len() > 1 {
        let sibling = index ^ 1;
        if sibling < level.len() {
            steps.push(Step {
                sibling: level[sibling],
                left: sibling < index,
            });
        }
        level = next_level(&level);
        index /= 2;
    }
    steps
}

/// The root a leaf and its proof lead to.
pub fn root_from_proof(leaf: Hash, steps: &[Step]) -> Hash {
    steps.iter().fold(leaf, |acc, step| {
        if step.left {
            node(&step.sibling, &acc)
        } else {
            node(&acc, &step.sibling)
        }
    })
}

/// Hashes as hex strings in JSON.
pub mod hex_hash {
    use super::Hash;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(hash: &Hash, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::store::instance_key::hex(hash))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Hash, D::Error> {
        let text = String::deserialize(d)?;
        crate::store::instance_key::unhex(&text)
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| serde::de::Error::custom("expected 32 bytes of hex"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_leaf_proves_into_the_root() {
        for n in 1..=9 {
            let leaves: Vec<Hash> = (0..n).map(|i| leaf(&[i as u8], b"record")).collect();
            let top = root(&leaves);
            for (i, l) in leaves.iter().enumerate() {
                assert_eq!(root_from_proof(*l, &proof(&leaves, i)), top, "n={n} i={i}");
            }
            let forged = leaf(&[99], b"record");
            assert_ne!(root_from_proof(forged, &proof(&leaves, 0)), top);
        }
    }
}
