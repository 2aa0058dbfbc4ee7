//! Disclosure control of a published table: primary suppression of cells about fewer
//! people than the threshold, secondary suppression until no suppressed cell can be worked
//! out from what is published, and rounding of the published figures.
//!
//! A table family for one year holds the grand total, the margins of each dimension and the
//! inner cells, each at the year, its quarters and its months. The relations a reader could
//! use are the additive ones: a margin is the sum of its row (column), the total the sum of
//! the margins, a year the sum of its quarters and a quarter of its months. Cells are
//! protected level by level (total, then each dimension's margins, then inner cells), each
//! level choosing extra suppressions only among its own cells: a margin is suppressed the
//! same way in every table that publishes it, so no two tables disagree about a shared cell.
//! Within a level, suppression is repeated until every relation has none or at least two
//! suppressed cells, and then until exact elimination over the suppressed cells determines
//! none of them (a relation-count rule alone can leave a cell bridging two protected groups
//! derivable). When inner cells tie a row margin to a column margin so that a lower level's
//! cell becomes determined and no cell of the level is left to suppress, a lower-level cell
//! is suppressed after all: the table stays safe, and that margin is then suppressed in this
//! table but not in the tables that show it without these inner cells.
use std::collections::HashMap;

use super::{Grana, TOTALE};

/// One cell of a table family, unrounded, as the projection holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cella {
    pub periodo: String,
    pub riga: String,
    pub colonna: String,
    pub valore: i64,
    pub persone: i64,
    pub somma: i64,
}

impl Cella {
    fn livello(&self) -> u8 {
        match (self.riga == TOTALE, self.colonna == TOTALE) {
            (true, true) => 0,
            (false, true) => 1,
            (true, false) => 2,
            (false, false) => 3,
        }
    }
}

/// An additive relation: `totale` is the sum of `parti`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Relazione {
    pub totale: usize,
    pub parti: Vec<usize>,
}

impl Relazione {
    fn membri(&self) -> impl Iterator<Item = usize> + '_ {
        std::iter::once(self.totale).chain(self.parti.iter().copied())
    }
}

/// The additive relations among the cells of one year's family.
pub fn relazioni(celle: &[Cella]) -> Vec<Relazione> {
    let at: HashMap<(&str, &str, &str), usize> =
        celle.iter().enumerate().map(|(i, c)| ((c.periodo.as_str(), c.riga.as_str(), c.colonna.as_str()), i)).collect();
    let mut groups: HashMap<(usize, u8), Vec<usize>> = HashMap::new();
    for (i, c) in celle.iter().enumerate() {
        let (p, r, k) = (c.periodo.as_str(), c.riga.as_str(), c.colonna.as_str());
        // Dimension margins: tag 0 sums over columns, 1 over rows.
        if k != TOTALE
            && let Some(&t) = at.get(&(p, r, TOTALE))
        {
            groups.entry((t, 0)).or_default().push(i);
        }
        if r != TOTALE
            && let Some(&t) = at.get(&(p, TOTALE, k))
        {
            groups.entry((t, 1)).or_default().push(i);
        }
        // Periods: a month sums into its quarter, a quarter into its year.
        let parent = match Grana::di(p) {
            Grana::Mese => {
                p.get(5..7).and_then(|m| m.parse::<u8>().ok()).map(|m| format!("{}-T{}", &p[..4], (m.saturating_sub(1)) / 3 + 1))
            }
            Grana::Trimestre => Some(p[..4].to_string()),
            Grana::Anno => None,
        };
        if let Some(&t) = parent.as_deref().and_then(|q| at.get(&(q, r, k))) {
            groups.entry((t, 2)).or_default().push(i);
        }
    }
    let mut out: Vec<Relazione> = groups.into_iter().map(|((totale, _), parti)| Relazione { totale, parti }).collect();
    out.sort_by(|a, b| (a.totale, &a.parti).cmp(&(b.totale, &b.parti)));
    out
}

/// Which cells of one year's family are suppressed: every cell about fewer than `soglia`
/// people, and the further cells needed so that none of them can be derived.
pub fn sopprimi(celle: &[Cella], soglia: i64) -> Vec<bool> {
    let rel = relazioni(celle);
    let mut soppressa = vec![false; celle.len()];
    let mut fatto = vec![false; celle.len()];
    for livello in 0..=3u8 {
        let liberi: Vec<bool> = celle.iter().map(|c| c.livello() == livello).collect();
        if !liberi.iter().any(|x| *x) {
            continue;
        }
        for (i, c) in celle.iter().enumerate() {
            if liberi[i] {
                fatto[i] = true;
                soppressa[i] = c.persone < soglia;
            }
        }
        // Relations among the cells settled so far.
        let attive: Vec<&Relazione> = rel.iter().filter(|r| r.membri().all(|m| fatto[m])).collect();
        proteggi_livello(celle, &attive, &liberi, &mut soppressa);
    }
    soppressa
}

/// The published cell of `r` to suppress next: a free one, the smallest.
fn scegli(celle: &[Cella], r: &Relazione, liberi: &[bool], soppressa: &[bool]) -> Option<usize> {
    r.membri().filter(|&m| liberi[m] && !soppressa[m]).min_by_key(|&m| (celle[m].persone, celle[m].valore, m))
}

fn proteggi_livello(celle: &[Cella], rel: &[&Relazione], liberi: &[bool], soppressa: &mut [bool]) {
    loop {
        // Every relation with a suppressed cell gets a second one.
        loop {
            let mut changed = false;
            for r in rel {
                if r.membri().filter(|&m| soppressa[m]).count() == 1
                    && let Some(m) = scegli(celle, r, liberi, soppressa)
                {
                    soppressa[m] = true;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        // Then exact elimination: a cell still determined gets a companion in one of its
        // relations.
        let determinate = derivabili(rel, soppressa);
        if determinate.is_empty() {
            return;
        }
        let mut progress = false;
        for j in &determinate {
            if let Some(m) = rel.iter().filter(|r| r.membri().any(|m| m == *j)).find_map(|r| scegli(celle, r, liberi, soppressa)) {
                soppressa[m] = true;
                progress = true;
            }
        }
        if !progress {
            // The determined cells are of lower levels, pinned through this level's
            // relations: suppress the smallest published cell of this level that shares a
            // relation with any suppressed cell, until none is determined or none is left.
            // When this level has none left, a lower level's cell is suppressed after all
            // (the table stays safe; the margin then differs from other tables').
            let tutti = vec![true; celle.len()];
            let pick = |liberi: &[bool]| {
                rel.iter()
                    .filter(|r| r.membri().any(|m| soppressa[m]))
                    .filter_map(|r| scegli(celle, r, liberi, soppressa))
                    .min_by_key(|&m| (celle[m].persone, celle[m].valore, m))
            };
            let m = pick(liberi).or_else(|| pick(&tutti));
            match m {
                Some(m) => soppressa[m] = true,
                None => return,
            }
        }
    }
}

/// The suppressed cells whose value follows from the published ones through `rel`: those
/// whose unit vector lies in the row space of the relations restricted to suppressed cells.
pub fn derivabili(rel: &[&Relazione], soppressa: &[bool]) -> Vec<usize> {
    // Rows over suppressed cells only; published cells are known constants.
    let rows: Vec<Vec<(usize, f64)>> = rel
        .iter()
        .map(|r| {
            let mut v: Vec<(usize, f64)> = Vec::new();
            if soppressa[r.totale] {
                v.push((r.totale, 1.0));
            }
            v.extend(r.parti.iter().filter(|&&p| soppressa[p]).map(|&p| (p, -1.0)));
            v
        })
        .filter(|v| !v.is_empty())
        .collect();
    // Split into independent components (cells linked through shared relations).
    let mut parent: HashMap<usize, usize> = HashMap::new();
    fn find(p: &mut HashMap<usize, usize>, x: usize) -> usize {
        let mut r = x;
        while let Some(&q) = p.get(&r).filter(|&&q| q != r) {
            r = q;
        }
        p.insert(x, r);
        r
    }
    for row in &rows {
        for &(c, _) in row {
            parent.entry(c).or_insert(c);
        }
        for w in row.windows(2) {
            let (a, b) = (find(&mut parent, w[0].0), find(&mut parent, w[1].0));
            if a != b {
                parent.insert(a, b);
            }
        }
    }
    let mut comps: HashMap<usize, Vec<usize>> = HashMap::new();
    for (ri, row) in rows.iter().enumerate() {
        let root = find(&mut parent, row[0].0);
        comps.entry(root).or_default().push(ri);
    }
    let mut out = Vec::new();
    for rs in comps.values() {
        let mut cols: Vec<usize> = rs.iter().flat_map(|&r| rows[r].iter().map(|(c, _)| *c)).collect();
        cols.sort_unstable();
        cols.dedup();
        let pos: HashMap<usize, usize> = cols.iter().enumerate().map(|(i, c)| (*c, i)).collect();
        let mut m: Vec<Vec<f64>> = rs
            .iter()
            .map(|&r| {
                let mut v = vec![0.0; cols.len()];
                for &(c, x) in &rows[r] {
                    v[pos[&c]] += x;
                }
                v
            })
            .collect();
        out.extend(rref_units(&mut m).into_iter().map(|k| cols[k]));
    }
    out.sort_unstable();
    out
}

/// Reduces `m` to reduced row echelon form and returns the columns that some row isolates
/// (a row with a single non-zero entry): the unknowns the system determines.
fn rref_units(m: &mut [Vec<f64>]) -> Vec<usize> {
    const EPS: f64 = 1e-9;
    let ncols = m.first().map_or(0, Vec::len);
    let mut r = 0;
    for c in 0..ncols {
        let Some(p) = (r..m.len()).max_by(|&a, &b| m[a][c].abs().total_cmp(&m[b][c].abs())) else { break };
        if m[p][c].abs() < EPS {
            continue;
        }
        m.swap(r, p);
        let piv = m[r][c];
        for x in m[r].iter_mut() {
            *x /= piv;
        }
        for i in 0..m.len() {
            if i != r && m[i][c].abs() >= EPS {
                let f = m[i][c];
                let (src, dst) = if i < r {
                    let (a, b) = m.split_at_mut(r);
                    (&b[0], &mut a[i])
                } else {
                    let (a, b) = m.split_at_mut(i);
                    (&a[r], &mut b[0])
                };
                for (d, s) in dst.iter_mut().zip(src.iter()) {
                    *d -= f * s;
                }
            }
        }
        r += 1;
        if r == m.len() {
            break;
        }
    }
    m.iter()
        .filter_map(|row| {
            let mut nz = row.iter().enumerate().filter(|(_, x)| x.abs() >= EPS);
            match (nz.next(), nz.next()) {
                (Some((k, _)), None) => Some(k),
                _ => None,
            }
        })
        .collect()
}

/// `v` rounded to the nearest multiple of `base` (halves up).
pub fn arrotonda(v: i64, base: i64) -> i64 {
    if base <= 1 {
        return v;
    }
    (v.saturating_add(base / 2)).div_euclid(base).saturating_mul(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(periodo: &str, riga: &str, colonna: &str, persone: i64) -> Cella {
        Cella { periodo: periodo.into(), riga: riga.into(), colonna: colonna.into(), valore: persone, persone, somma: 0 }
    }

    #[test]
    fn rounding_to_base_five() {
        assert_eq!([0, 2, 3, 7, 8, 12, 13].map(|v| arrotonda(v, 5)), [0, 0, 5, 5, 10, 10, 15]);
    }

    #[test]
    fn a_lone_small_cell_gets_a_companion_in_its_row_and_column() {
        // One year, no quarters: rows a, b; columns x, y.
        let cells = vec![
            c("2026", "*", "*", 42),
            c("2026", "a", "*", 20),
            c("2026", "b", "*", 22),
            c("2026", "*", "x", 21),
            c("2026", "*", "y", 21),
            c("2026", "a", "x", 1),
            c("2026", "a", "y", 19),
            c("2026", "b", "x", 20),
            c("2026", "b", "y", 2),
        ];
        let s = sopprimi(&cells, 3);
        // (a,x) and (b,y) are small; the rest of the 2×2 block follows.
        assert!(s[5] && s[8]);
        assert!(s[6] && s[7], "a 2×2 block with margins needs all four cells suppressed: {s:?}");
        assert!(!s[0] && !s[1] && !s[3]);
    }
}
