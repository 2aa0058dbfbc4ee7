//! Blocking: only records sharing at least one key are compared. Several keys, each robust
//! to a different error, so one error rarely hides a match from all of them:
//! the birth date; surname and name as an unordered pair (swaps); surname and birth year;
//! the first eleven characters of the codice fiscale as written (name letters and birth
//! data, even when the check character is wrong); name, surname initial and birth day and
//! month (a mistyped year with a mistyped surname). A pair found by several keys is
//! compared once, under the first key that holds it.
use std::{
    collections::HashSet,
    hash::{DefaultHasher, Hash, Hasher},
};

use super::Prepared;

pub const KEYS: usize = 5;

/// Hashed blocking keys of a record; 0 where a key cannot be made (a field is missing).
pub type Keys = [u64; KEYS];

fn h(parts: &[&dyn HashPart]) -> u64 {
    let mut s = DefaultHasher::new();
    for p in parts {
        p.hash_part(&mut s);
    }
    s.finish().max(1)
}

trait HashPart {
    fn hash_part(&self, s: &mut DefaultHasher);
}
impl<T: Hash> HashPart for T {
    fn hash_part(&self, s: &mut DefaultHasher) {
        self.hash(s);
    }
}

pub fn keys(records: &[Prepared]) -> Vec<Keys> {
    records.iter().map(record_keys).collect()
}

pub fn record_keys(r: &Prepared) -> Keys {
    let mut k = [0u64; KEYS];
    let names = !r.cognome.is_empty() && !r.nome.is_empty();
    if let Some(d) = r.nascita {
        k[0] = h(&[&0u8, &d.year(), &u8::from(d.month()), &d.day()]);
        if !r.cognome.is_empty() {
            k[2] = h(&[&2u8, &r.cognome, &d.year()]);
        }
        if names {
            k[4] = h(&[&4u8, &r.nome, &r.cognome.as_bytes()[0], &u8::from(d.month()), &d.day()]);
        }
    }
    if names {
        let (x, y) = if r.cognome <= r.nome { (&r.cognome, &r.nome) } else { (&r.nome, &r.cognome) };
        k[1] = h(&[&1u8, x, y]);
    }
    if r.cf_raw.len() >= 11 && r.cf_raw.is_ascii() {
        k[3] = h(&[&3u8, &&r.cf_raw[..11]]);
    }
    k
}

/// Calls `f(a, b)` (a < b) once for every pair sharing a key, skipping blocks larger than
/// `max_block`. Returns the number of blocks skipped.
pub fn for_each_pair(keys: &[Keys], max_block: usize, mut f: impl FnMut(u32, u32)) -> usize {
    let mut skipped: HashSet<(usize, u64)> = HashSet::new();
    let mut entries: Vec<(u64, u32)> = Vec::with_capacity(keys.len());
    for k in 0..KEYS {
        entries.clear();
        entries.extend(keys.iter().enumerate().filter(|(_, ks)| ks[k] != 0).map(|(i, ks)| (ks[k], i as u32)));
        entries.sort_unstable();
        for block in entries.chunk_by(|x, y| x.0 == y.0) {
            if block.len() > max_block {
                skipped.insert((k, block[0].0));
                continue;
            }
            for (i, &(_, a)) in block.iter().enumerate() {
                for &(_, b) in &block[i + 1..] {
                    let (ka, kb) = (&keys[a as usize], &keys[b as usize]);
                    let earlier = (0..k).any(|e| ka[e] != 0 && ka[e] == kb[e] && !skipped.contains(&(e, ka[e])));
                    if !earlier {
                        f(a.min(b), a.max(b));
                    }
                }
            }
        }
    }
    skipped.len()
}

/// Calls `f(a, b)` for every pair in the blocks of key `k` alone (pairs other keys also
/// hold included), skipping blocks larger than `max_block`: the pairs of a training session.
/// Returns the records in the blocks kept and the records that have the key.
pub fn for_each_pair_of_key(keys: &[Keys], k: usize, max_block: usize, mut f: impl FnMut(u32, u32)) -> (usize, usize) {
    let mut entries: Vec<(u64, u32)> = keys.iter().enumerate().filter(|(_, ks)| ks[k] != 0).map(|(i, ks)| (ks[k], i as u32)).collect();
    entries.sort_unstable();
    let mut kept = 0;
    for block in entries.chunk_by(|x, y| x.0 == y.0).filter(|b| b.len() <= max_block) {
        kept += block.len();
        for (i, &(_, a)) in block.iter().enumerate() {
            for &(_, b) in &block[i + 1..] {
                f(a.min(b), a.max(b));
            }
        }
    }
    (kept, entries.len())
}

/// Training sessions: (key, fields left out). The birth-date key trains everything but the
/// date; the names key trains the date, place, sex and code.
pub const TRAINING: [(usize, &[usize]); 2] = [(0, &[2]), (1, &[0, 1])];

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;
    use crate::linkage::{Record, prepare};

    fn rec(cognome: &str, nome: &str, nascita: Option<time::Date>, cf: &str) -> Prepared {
        prepare(&Record { cognome: cognome.into(), nome: nome.into(), nascita, codice_fiscale: cf.into(), ..Record::default() })
    }

    fn pairs(records: &[Prepared], max_block: usize) -> (Vec<(u32, u32)>, usize) {
        let mut out = Vec::new();
        let skipped = for_each_pair(&keys(records), max_block, |a, b| out.push((a, b)));
        out.sort_unstable();
        (out, skipped)
    }

    #[test]
    fn each_error_still_meets_a_key_and_pairs_come_once() {
        let d = Some(date!(1980 - 03 - 07));
        let records = vec![
            rec("Rossi", "Mario", d, "RSSMRA80C07H501X"),
            rec("Mario", "Rossi", Some(date!(1980 - 07 - 03)), ""), // swapped names and day/month
            rec("Rosi", "Mario", None, "RSSMRA80C07H501Y"),         // surname typo, no date, CF typo
            rec("Rossi", "Mario", Some(date!(1981 - 03 - 07)), ""), // year typo
            rec("Bianchi", "Giulia", Some(date!(1990 - 11 - 21)), ""), // nobody
        ];
        let (p, skipped) = pairs(&records, 100);
        assert_eq!(skipped, 0);
        assert_eq!(p, vec![(0, 1), (0, 2), (0, 3), (1, 3)]);
    }

    #[test]
    fn large_blocks_are_skipped_but_other_keys_still_pair() {
        let d = Some(date!(1980 - 03 - 07));
        let mut records: Vec<Prepared> =
            (0..5).map(|i| rec(&format!("Cognome{}", "x".repeat(i)), &format!("Anna{}", "y".repeat(i)), d, "")).collect();
        records.push(rec("Verdi", "Luca", Some(date!(1970 - 01 - 01)), ""));
        records.push(rec("Verdi", "Luca", Some(date!(1970 - 01 - 01)), ""));
        // The shared birth date makes a block of 5 > 3: skipped; the Verdi pair stays.
        let (p, skipped) = pairs(&records, 3);
        assert_eq!(skipped, 1);
        assert_eq!(p, vec![(5, 6)]);
    }
}
