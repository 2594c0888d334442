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

/// The sides (`left` of each step) the proof of leaf `index` in a tree of `size` leaves
/// has, in order: a proof of another shape is not one this tree makes.
pub fn proof_shape(mut size: usize, mut index: usize) -> Vec<bool> {
    let mut sides = Vec::new();
    while size > 1 {
        let sibling = index ^ 1;
        if sibling < size {
            sides.push(sibling < index);
        }
        size = size.div_ceil(2);
        index /= 2;
    }
    sides
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
        for n in 1..=9usize {
            let bodies: Vec<Vec<u8>> = (0..n)
                .map(|i| format!("{{\"seq\":{}}}", i + 1).into_bytes())
                .collect();
            let macs: Vec<[u8; 32]> = (0..n).map(|i| [i as u8; 32]).collect();
            let leaves: Vec<Hash> = (0..n).map(|i| leaf(&macs[i], &bodies[i])).collect();
            let top = root(&leaves);
            for i in 0..n {
                let steps = proof(&leaves, i);
                assert_eq!(root_from_proof(leaves[i], &steps), top, "n={n} i={i}");
                let sides: Vec<bool> = steps.iter().map(|s| s.left).collect();
                assert_eq!(sides, proof_shape(n, i), "n={n} i={i}");

                let mut body = bodies[i].clone();
                body[2] ^= 1;
                let altered = leaf(&macs[i], &body);
                assert_ne!(root_from_proof(altered, &steps), top, "body n={n} i={i}");
                let mut mac = macs[i];
                mac[0] ^= 0x80;
                let altered = leaf(&mac, &bodies[i]);
                assert_ne!(root_from_proof(altered, &steps), top, "mac n={n} i={i}");
                for s in 0..steps.len() {
                    let mut flipped = steps.clone();
                    flipped[s].sibling[31] ^= 1;
                    assert_ne!(root_from_proof(leaves[i], &flipped), top, "n={n} i={i}");
                    let mut turned = steps.clone();
                    turned[s].left = !turned[s].left;
                    assert_ne!(root_from_proof(leaves[i], &turned), top, "n={n} i={i}");
                }
                if n > 1 {
                    assert_ne!(root_from_proof(leaves[i], &steps[1..]), top);
                    assert_ne!(root_from_proof(leaves[(i + 1) % n], &steps), top);
                }
            }
        }
    }
}
