//! Clusters of linked records (union–find), refusing any join that would put two different
//! trusted codici fiscali in one person: a chain of uncertain links must not merge two
//! people the codes tell apart.
use super::{Outcome, Pair, Prepared};

/// Cluster of each record: the smallest record index in it.
pub fn clusters(records: &[Prepared], pairs: &[Pair]) -> Vec<u32> {
    let n = records.len();
    let mut parent: Vec<u32> = (0..n as u32).collect();
    // The trusted code of each root's cluster, as the index of a record carrying it.
    let mut cf_of: Vec<Option<u32>> = records.iter().enumerate().map(|(i, r)| r.trusted_cf().map(|_| i as u32)).collect();
    for p in pairs.iter().filter(|p| p.outcome == Outcome::Linked) {
        let (ra, rb) = (find(&mut parent, p.a), find(&mut parent, p.b));
        if ra == rb {
            continue;
        }
        let (ca, cb) = (cf_of[ra as usize], cf_of[rb as usize]);
        if let (Some(x), Some(y)) = (ca, cb)
            && records[x as usize].trusted_cf() != records[y as usize].trusted_cf()
        {
            continue;
        }
        let (root, child) = if ra < rb { (ra, rb) } else { (rb, ra) };
        parent[child as usize] = root;
        cf_of[root as usize] = ca.or(cb);
    }
    (0..n as u32).map(|i| find(&mut parent, i)).collect()
}

fn find(parent: &mut [u32], mut i: u32) -> u32 {
    while parent[i as usize] != i {
        let up = parent[parent[i as usize] as usize];
        parent[i as usize] = up;
        i = up;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        domain::codice_fiscale::compose,
        linkage::{Evidence, Record, prepare},
    };

    fn linked(a: u32, b: u32) -> Pair {
        Pair { a, b, probability: 0.95, outcome: Outcome::Linked, evidence: Evidence::SameTrustedCf }
    }

    #[test]
    fn chain_across_two_trusted_codes_is_cut() {
        let cf1 = compose("Rossi", "Mario", 1980, 3, 7, false, "H501");
        let cf2 = compose("Rossi", "Mario", 1980, 3, 7, false, "F205");
        let r =
            |cf: &str| prepare(&Record { cognome: "Rossi".into(), nome: "Mario".into(), codice_fiscale: cf.into(), ..Record::default() });
        let records = vec![r(&cf1), r(""), r(&cf2), r(""), r("")];
        let pairs = vec![linked(0, 1), linked(1, 2), linked(3, 4)];
        assert_eq!(clusters(&records, &pairs), vec![0, 0, 2, 3, 3]);
        // A review pair joins nothing.
        let mut review = linked(0, 3);
        review.outcome = Outcome::Review;
        assert_eq!(clusters(&records, &[review]), vec![0, 1, 2, 3, 4]);
    }
}
