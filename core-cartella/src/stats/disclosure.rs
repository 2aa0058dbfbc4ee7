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
//! suppressed cells, then until exact elimination over the suppressed cells determines
//! none of them (a relation-count rule alone can leave a cell bridging two protected groups
//! derivable), and then until none is pinned once a reader also uses that every suppressed
//! cell describes at least one person (two suppressed cells of 1 in a row whose published
//! cells leave 2 for them are both 1: each cell's interval by linear programming, rounded
//! to whole people, see [`fissate`]). When inner cells tie a row margin to a column margin so that a lower level's
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

/// The protection of a family did not end within its time budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OltreIlTempo;

thread_local! {
    /// When the protection running on this thread must give up (see [`sopprimi_entro`]).
    static SCADENZA: std::cell::Cell<Option<std::time::Instant>> = const { std::cell::Cell::new(None) };
}

/// True once this thread's protection is past its deadline: the loops stop at once, their
/// result is thrown away.
fn scaduto() -> bool {
    SCADENZA.with(|s| s.get().is_some_and(|d| std::time::Instant::now() >= d))
}

/// [`sopprimi`] within `budget`: a sparse family (many cells under the threshold, linked
/// through many relations) can take the bounds check minutes, so past the budget nothing is
/// published and the caller is told to ask for a coarser table.
pub fn sopprimi_entro(celle: &[Cella], soglia: i64, budget: std::time::Duration) -> Result<Vec<bool>, OltreIlTempo> {
    let deadline = std::time::Instant::now().checked_add(budget);
    let before = SCADENZA.with(|s| s.replace(deadline));
    let out = sopprimi(celle, soglia);
    let late = scaduto();
    SCADENZA.with(|s| s.set(before));
    if late { Err(OltreIlTempo) } else { Ok(out) }
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

/// The cell to suppress for a cell `j` pinned by the bounds: in the relation of `j` (`di`:
/// each cell's relations) that leaves it least room (the other suppressed members' distance
/// above the bound; none is left when they all sit at it), a published cell of this level,
/// else of a lower level (suppressed after all, as for lower levels' cells below).
/// `tutti` marks every cell.
fn compagno_per_limiti(
    celle: &[Cella],
    rel: &[&Relazione],
    di: &[Vec<usize>],
    liberi: &[bool],
    tutti: &[bool],
    soppressa: &[bool],
    j: usize,
) -> Option<usize> {
    let spazio =
        |r: &Relazione| -> i64 { r.membri().filter(|&m| m != j && soppressa[m]).map(|m| (celle[m].persone - MINIMO).max(0)).sum() };
    let mut best: Option<((i64, bool, i64, usize), usize)> = None;
    for r in di[j].iter().map(|&ri| rel[ri]) {
        let (m, lower) = match scegli(celle, r, liberi, soppressa) {
            Some(m) => (m, false),
            None => match scegli(celle, r, tutti, soppressa) {
                Some(m) => (m, true),
                None => continue,
            },
        };
        let key = (spazio(r), lower, celle[m].persone, m);
        if best.as_ref().is_none_or(|(k, _)| key < *k) {
            best = Some((key, m));
        }
    }
    best.map(|(_, m)| m)
}

fn proteggi_livello(celle: &[Cella], rel: &[&Relazione], liberi: &[bool], soppressa: &mut [bool]) {
    let valori: Vec<i64> = celle.iter().map(|c| c.persone).collect();
    // Cells known to move within the bounds; stays true as more cells are suppressed.
    let mut libere = vec![false; celle.len()];
    let tutti = vec![true; celle.len()];
    // The relations each cell is in.
    let mut di: Vec<Vec<usize>> = vec![Vec::new(); celle.len()];
    for (ri, r) in rel.iter().enumerate() {
        for m in r.membri() {
            di[m].push(ri);
        }
    }
    loop {
        if scaduto() {
            return;
        }
        // Every relation with a suppressed cell gets a second one: of this level, else (a
        // lower level's cell suppressed after all, below) of a lower one.
        loop {
            let mut changed = false;
            for r in rel {
                if r.membri().filter(|&m| soppressa[m]).count() == 1
                    && let Some(m) = scegli(celle, r, liberi, soppressa).or_else(|| scegli(celle, r, &tutti, soppressa))
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
        // relations. Once none is, the bounds: a cell pinned because its relations leave it
        // no room above one person gets a companion where there is least room (the relation
        // whose other suppressed cells are nearest their bound), so that it can move.
        let determinate = derivabili_oltre(rel, soppressa, &libere);
        if determinate.is_empty() {
            let fisse = fissate_oltre(rel, soppressa, &valori, &mut libere);
            if fisse.is_empty() || scaduto() {
                return;
            }
            // One companion per pinned cell not already helped this round by a companion in
            // one of its relations (one companion can free several pinned cells). A pinned
            // cell whose relations are all suppressed gets the nearest published cell.
            let mut aiutate = vec![false; celle.len()];
            let mut progress = false;
            for &j in &fisse {
                if aiutate[j] {
                    continue;
                }
                let m = compagno_per_limiti(celle, rel, &di, liberi, &tutti, soppressa, j)
                    .or_else(|| vicino(celle, rel, &di, j, liberi, soppressa))
                    .or_else(|| vicino(celle, rel, &di, j, &tutti, soppressa));
                if let Some(m) = m {
                    soppressa[m] = true;
                    progress = true;
                    for &ri in &di[m] {
                        rel[ri].membri().for_each(|x| aiutate[x] = true);
                    }
                }
            }
            if !progress {
                return;
            }
            continue;
        }
        let mut progress = false;
        for j in &determinate {
            if let Some(m) = di[*j].iter().find_map(|&ri| scegli(celle, rel[ri], liberi, soppressa)) {
                soppressa[m] = true;
                progress = true;
            }
        }
        if !progress {
            // The determined cells are of lower levels, pinned through this level's
            // relations with every cell of this level in their own relations suppressed:
            // for each, the smallest published cell of this level nearest to it through
            // suppressed cells and their relations, so that a new degree of freedom
            // reaches it. When this level has none left in reach, a lower level's cell is
            // suppressed after all (the table stays safe; the margin then differs from
            // other tables').
            let mut progress = false;
            for &j in &determinate {
                if let Some(m) = vicino(celle, rel, &di, j, liberi, soppressa).or_else(|| vicino(celle, rel, &di, j, &tutti, soppressa)) {
                    soppressa[m] = true;
                    progress = true;
                }
            }
            if !progress {
                return;
            }
        }
    }
}

/// The published cell among `liberi` nearest to `j`, walking from `j` through its relations
/// and the suppressed cells in them: the smallest of the nearest ring that has one.
fn vicino(celle: &[Cella], rel: &[&Relazione], di: &[Vec<usize>], j: usize, liberi: &[bool], soppressa: &[bool]) -> Option<usize> {
    let mut visto = vec![false; celle.len()];
    let mut relazione_vista = vec![false; rel.len()];
    visto[j] = true;
    let mut fronte = vec![j];
    while !fronte.is_empty() {
        let mut prossimo = Vec::new();
        let mut migliore: Option<usize> = None;
        for &x in &fronte {
            for &ri in &di[x] {
                if std::mem::replace(&mut relazione_vista[ri], true) {
                    continue;
                }
                for m in rel[ri].membri() {
                    if soppressa[m] {
                        if !std::mem::replace(&mut visto[m], true) {
                            prossimo.push(m);
                        }
                    } else if liberi[m]
                        && migliore.is_none_or(|b| (celle[m].persone, celle[m].valore, m) < (celle[b].persone, celle[b].valore, b))
                    {
                        migliore = Some(m);
                    }
                }
            }
        }
        if migliore.is_some() {
            return migliore;
        }
        fronte = prossimo;
    }
    None
}

/// The linear system a reader has about the suppressed cells of one component (cells
/// linked through shared relations): one row per relation, one column per cell in `cols`;
/// published cells are known constants and left out.
struct Sistema {
    cols: Vec<usize>,
    m: Vec<Vec<f64>>,
}

fn sistemi(rel: &[&Relazione], soppressa: &[bool]) -> Vec<Sistema> {
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
    let mut out: Vec<Sistema> = comps
        .into_values()
        .map(|rs| {
            let mut cols: Vec<usize> = rs.iter().flat_map(|&r| rows[r].iter().map(|(c, _)| *c)).collect();
            cols.sort_unstable();
            cols.dedup();
            let pos: HashMap<usize, usize> = cols.iter().enumerate().map(|(i, c)| (*c, i)).collect();
            let m = rs
                .iter()
                .map(|&r| {
                    let mut v = vec![0.0; cols.len()];
                    for &(c, x) in &rows[r] {
                        v[pos[&c]] += x;
                    }
                    v
                })
                .collect();
            Sistema { cols, m }
        })
        .collect();
    out.sort_by_key(|s| s.cols.first().copied());
    out
}

/// The suppressed cells whose value follows from the published ones through `rel`: those
/// whose unit vector lies in the row space of the relations restricted to suppressed cells.
pub fn derivabili(rel: &[&Relazione], soppressa: &[bool]) -> Vec<usize> {
    derivabili_oltre(rel, soppressa, &vec![false; soppressa.len()])
}

/// [`derivabili`], skipping the components whose cells `libere` marks as known to move.
fn derivabili_oltre(rel: &[&Relazione], soppressa: &[bool], libere: &[bool]) -> Vec<usize> {
    let mut out = Vec::new();
    for mut s in sistemi(rel, soppressa) {
        if s.cols.iter().all(|&c| libere[c]) {
            continue;
        }
        out.extend(rref_units(&mut s.m).into_iter().map(|k| s.cols[k]));
    }
    out.sort_unstable();
    out
}

/// Smallest value a reader knows a suppressed cell has: a listed cell describes somebody
/// (cells nobody is in are not listed at all).
pub const MINIMO: i64 = 1;

/// The suppressed cells a reader can pin down from the published ones through `rel` when
/// they also use that every suppressed cell is at least [`MINIMO`]: the cells whose
/// interval over all real solutions of the relations with those bounds (what a linear
/// program finds, maximising and minimising the cell) holds a single whole number.
/// Includes [`derivabili`]'s cells. `valori` are the cells' true values (`persone`); the
/// relations are taken as exact.
///
/// Whole numbers matter: with months, quarters and margins together the system is not one
/// whose vertices are all whole, and an interval such as [1, 1.5] tells a reader counting
/// people that the cell is 1.
pub fn fissate(rel: &[&Relazione], soppressa: &[bool], valori: &[i64]) -> Vec<usize> {
    fissate_oltre(rel, soppressa, valori, &mut vec![false; soppressa.len()])
}

/// [`fissate`], skipping the cells `libere` marks as known to move, and marking every cell
/// found to move. With the same relations, suppressing more cells never pins a cell that
/// moved (a solution for fewer suppressed cells is one for more, with the new ones at their
/// true values), so a level's loop keeps `libere` from round to round and only components
/// with an unsettled cell run a program.
fn fissate_oltre(rel: &[&Relazione], soppressa: &[bool], valori: &[i64], libere: &mut [bool]) -> Vec<usize> {
    let mut out = Vec::new();
    for s in sistemi(rel, soppressa) {
        if s.cols.iter().all(|&c| libere[c]) {
            continue;
        }
        // Distance of each cell above the bound: a solution of the system by construction.
        let y: Vec<f64> = s.cols.iter().map(|&c| (valori[c] - MINIMO).max(0) as f64).collect();
        let r: Vec<f64> = s.m.iter().map(|row| row.iter().zip(&y).map(|(a, b)| a * b).sum()).collect();
        let mut libera: Vec<bool> = s.cols.iter().map(|&c| libere[c]).collect();
        out.extend(lp::strette(&s.m, &r, &y, &mut libera).into_iter().map(|k| s.cols[k]));
        for (&c, l) in s.cols.iter().zip(libera) {
            libere[c] = l;
        }
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
        // Only the pivot row's non-zero entries change the others: few, on these systems.
        // Every entry counts, however small; what rounding leaves near zero is flushed.
        let nz: Vec<(usize, f64)> = m[r].iter().enumerate().filter(|(_, x)| **x != 0.0).map(|(j, x)| (j, *x)).collect();
        for (i, row) in m.iter_mut().enumerate() {
            if i != r && row[c] != 0.0 {
                let f = row[c];
                for &(j, x) in &nz {
                    let d = row[j] - f * x;
                    row[j] = if d.abs() < 1e-11 { 0.0 } else { d };
                }
                row[c] = 0.0;
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

/// A dense simplex over `m y = r, y ≥ 0`, for [`fissate`]. The tableau keeps the reduced
/// costs of its objective as an extra row, so pricing reads one row; a pivot only touches
/// the pivot row's non-zero entries, which stay few on these sparse systems. The entering
/// column is the most improving one until a run of degenerate pivots, then the first
/// improving one (Bland's rule, which cannot cycle) until the objective moves again. The
/// leaving row is, among those tied for the least ratio, the one with the largest entry, and
/// no pivot is on an entry under [`lp::PIVOT`]; eliminations use every entry however small
/// and flush what rounding leaves near zero. Every solution that settles a cell is checked
/// against the system's own rows before it counts.
mod lp {
    const EPS: f64 = 1e-9;
    /// A value above this is positive (the data are integers).
    const POS: f64 = 1e-6;
    /// Degenerate pivots in a row after which Bland's rule takes over.
    const DEGENERI: usize = 16;
    /// The smallest entry a pivot may be on: smaller ones are rounding left by earlier
    /// pivots, and dividing by them would swamp the tableau.
    pub(super) const PIVOT: f64 = 1e-6;
    /// Below this a tableau entry is rounding, and zero.
    const ZERO: f64 = 1e-11;
    /// Pivots one cell's program may take before it is given up (the cell then counts as
    /// pinned, the safe side).
    const PASSI_PER_CELLA: usize = 100_000;

    struct Tableau {
        /// Rows `[coefficients of the n columns | rhs]`, in the basis' terms.
        t: Vec<Vec<f64>>,
        /// The basic variable of each row: a column, or `n + i` for row i's artificial one
        /// (artificial columns are not stored: once out of the basis they never return).
        basis: Vec<usize>,
        /// The row where each column is basic.
        riga: Vec<Option<usize>>,
        /// Reduced costs of the current objective, and minus its value last.
        z: Vec<f64>,
        n: usize,
    }

    enum Esito {
        Ottimo,
        Illimitato,
        /// The caller's stop condition held.
        Fermato,
        /// Gave up (iteration cap or deadline): the caller assumes the worst.
        Incerto,
    }

    impl Tableau {
        fn pivot(&mut self, r: usize, c: usize) {
            let n = self.n;
            let mut row = std::mem::take(&mut self.t[r]);
            let piv = row[c];
            for x in row.iter_mut() {
                *x /= piv;
            }
            row[c] = 1.0;
            // Every entry counts, however small (a small multiplier of a large entry is not
            // small); what rounding leaves near zero is flushed to zero.
            let nz: Vec<(usize, f64)> = row.iter().enumerate().filter(|(_, x)| **x != 0.0).map(|(j, x)| (j, *x)).collect();
            let elimina = |v: &mut Vec<f64>| {
                let f = v[c];
                if f != 0.0 {
                    for &(j, x) in &nz {
                        let d = v[j] - f * x;
                        v[j] = if d.abs() < ZERO { 0.0 } else { d };
                    }
                }
                v[c] = 0.0;
            };
            for (i, v) in self.t.iter_mut().enumerate() {
                if i != r {
                    elimina(v);
                }
            }
            elimina(&mut self.z);
            self.t[r] = row;
            if let Some(old) = self.basis.get(r).copied().filter(|&b| b < n) {
                self.riga[old] = None;
            }
            self.basis[r] = c;
            self.riga[c] = Some(r);
        }

        /// Makes `obj` (sparse: column, weight) the objective to maximise.
        fn obiettivo(&mut self, obj: &[(usize, f64)]) {
            self.z.iter_mut().for_each(|x| *x = 0.0);
            for &(j, w) in obj {
                self.z[j] += w;
            }
            for &(j, w) in obj {
                if let Some(i) = self.riga[j] {
                    for (z, x) in self.z.iter_mut().zip(&self.t[i]) {
                        *z -= w * x;
                    }
                }
            }
            for (j, r) in self.riga.iter().enumerate() {
                if r.is_some() {
                    self.z[j] = 0.0;
                }
            }
        }

        /// Maximises the objective from the current basis, in at most `cap` pivots; `stop`
        /// is asked after every pivot, the deadline every few.
        fn massimizza(&mut self, cap: usize, stop: &mut dyn FnMut(&Tableau) -> bool) -> Esito {
            let n = self.n;
            let mut degeneri = 0;
            for it in 0..cap {
                if it % 8 == 7 && super::scaduto() {
                    return Esito::Incerto;
                }
                let candidate = |j: &usize| self.riga[*j].is_none() && self.z[*j] > EPS;
                let entra = if degeneri >= DEGENERI {
                    (0..n).find(candidate)
                } else {
                    (0..n).filter(candidate).max_by(|&a, &b| self.z[a].total_cmp(&self.z[b]).then(b.cmp(&a)))
                };
                let Some(c) = entra else { return Esito::Ottimo };
                // The step: the least ratio (a rhs a rounding error below zero counts as zero:
                // a step back could cycle). Among the rows that tie for it, the largest entry
                // (a small one would swamp the tableau with rounding), or under Bland's rule
                // the smallest basic variable.
                let quoto = |i: usize| self.t[i][n].max(0.0) / self.t[i][c];
                let righe: Vec<usize> = (0..self.t.len()).filter(|&i| self.t[i][c] > PIVOT).collect();
                let Some(passo) = righe.iter().map(|&i| quoto(i)).min_by(f64::total_cmp) else {
                    // Unbounded only if no entry of the column is positive at all; entries
                    // too small to pivot on leave it unknown (the caller assumes the worst).
                    return if self.t.iter().all(|row| row[c] <= 0.0) { Esito::Illimitato } else { Esito::Incerto };
                };
                let pari = righe.into_iter().filter(|&i| quoto(i) <= passo + EPS);
                let esce = if degeneri >= DEGENERI {
                    pari.min_by_key(|&i| self.basis[i])
                } else {
                    pari.max_by(|&a, &b| self.t[a][c].total_cmp(&self.t[b][c]).then(b.cmp(&a)))
                };
                let Some(r) = esce else { return Esito::Incerto };
                let degenere = self.t[r][n] <= POS;
                self.pivot(r, c);
                degeneri = if degenere { degeneri + 1 } else { 0 };
                if stop(self) {
                    return Esito::Fermato;
                }
            }
            Esito::Incerto
        }

        fn valore(&self, k: usize) -> f64 {
            self.riga[k].map_or(0.0, |i| self.t[i][self.n])
        }
    }

    /// A basic solution of `m y = r, y ≥ 0` (phase 1), with the artificial variables out of
    /// the basis and redundant rows dropped; None if none was found.
    fn fattibile(m: &[Vec<f64>], r: &[f64]) -> Option<Tableau> {
        let n = m.first().map_or(0, Vec::len);
        // Rows signed so the rhs is not negative, each with its artificial variable basic.
        let t: Vec<Vec<f64>> = m
            .iter()
            .zip(r)
            .map(|(row, &b)| {
                let s = if b < 0.0 { -1.0 } else { 1.0 };
                let mut v: Vec<f64> = row.iter().map(|x| s * x).collect();
                v.push(s * b);
                v
            })
            .collect();
        // Maximise minus the sum of the artificial variables: the reduced cost of a column
        // is the sum of its entries, minus the objective the sum of the rhs.
        let mut z = vec![0.0; n + 1];
        for row in &t {
            for (zj, x) in z.iter_mut().zip(row) {
                *zj += x;
            }
        }
        let rows = t.len();
        let mut tab = Tableau { t, basis: (n..n + rows).collect(), riga: vec![None; n], z, n };
        if !matches!(tab.massimizza(50 * (rows + n) + 100, &mut |_| false), Esito::Ottimo) {
            return None;
        }
        if tab.basis.iter().zip(&tab.t).any(|(&b, row)| b >= n && row[n] > 1e-5) {
            return None;
        }
        let mut i = 0;
        while i < tab.t.len() {
            if tab.basis[i] >= n {
                // The artificial variable is at zero (up to rounding): swap it for the column
                // with the largest entry in its row, a step of zero.
                tab.t[i][n] = 0.0;
                let j = (0..n)
                    .filter(|&j| tab.riga[j].is_none() && tab.t[i][j].abs() > EPS)
                    .max_by(|&a, &b| tab.t[i][a].abs().total_cmp(&tab.t[i][b].abs()).then(b.cmp(&a)));
                match j {
                    Some(j) => tab.pivot(i, j),
                    None => {
                        tab.t.remove(i);
                        tab.basis.remove(i);
                        for (k, &b) in tab.basis.iter().enumerate().skip(i) {
                            if b < n {
                                tab.riga[b] = Some(k);
                            }
                        }
                        continue;
                    }
                }
            }
            i += 1;
        }
        Some(tab)
    }

    /// Outer bounds of each column over the solutions of `m y = r, y ≥ 0`, by propagating
    /// the bounds through the rows until they settle: every solution lies within them, so a
    /// column whose bounds are narrow is pinned without a program.
    fn propaga(m: &[Vec<f64>], r: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
        let righe: Vec<Vec<(usize, f64)>> =
            m.iter().map(|row| row.iter().enumerate().filter(|(_, a)| a.abs() > EPS).map(|(j, a)| (j, *a)).collect()).collect();
        let (mut lo, mut hi) = (vec![0.0f64; n], vec![f64::INFINITY; n]);
        for _ in 0..64 {
            let mut mosso = false;
            for (row, &b) in righe.iter().zip(r) {
                // The least and greatest value of the row's sum, and how many terms are unbounded each way.
                let (mut smin, mut smax, mut inf_min, mut inf_max) = (0.0, 0.0, 0usize, 0usize);
                for &(j, a) in row {
                    let (l, h) = if a > 0.0 { (a * lo[j], a * hi[j]) } else { (a * hi[j], a * lo[j]) };
                    if l.is_finite() {
                        smin += l
                    } else {
                        inf_min += 1
                    }
                    if h.is_finite() { smax += h } else { inf_max += 1 }
                }
                for &(k, a) in row {
                    let (l, h) = if a > 0.0 { (a * lo[k], a * hi[k]) } else { (a * hi[k], a * lo[k]) };
                    // The others' sum lies in [rest_min, rest_max]; a·y_k = b − others.
                    let rest_min = if !l.is_finite() {
                        if inf_min == 1 { smin } else { f64::NEG_INFINITY }
                    } else if inf_min == 0 {
                        smin - l
                    } else {
                        f64::NEG_INFINITY
                    };
                    let rest_max = if !h.is_finite() {
                        if inf_max == 1 { smax } else { f64::INFINITY }
                    } else if inf_max == 0 {
                        smax - h
                    } else {
                        f64::INFINITY
                    };
                    let (v1, v2) = ((b - rest_max) / a, (b - rest_min) / a);
                    let (nl, nh) = if a > 0.0 { (v1, v2) } else { (v2, v1) };
                    if nl.is_finite() && nl > lo[k] + POS {
                        lo[k] = nl;
                        mosso = true;
                    }
                    if nh.is_finite() && nh < hi[k] - POS {
                        hi[k] = nh.max(lo[k]);
                        mosso = true;
                    }
                }
            }
            if !mosso {
                break;
            }
        }
        (lo, hi)
    }

    /// A system kept as its sparse rows, to check the solutions a tableau claims.
    struct Verifica<'a> {
        righe: Vec<Vec<(usize, f64)>>,
        r: &'a [f64],
    }

    impl<'a> Verifica<'a> {
        fn di(m: &[Vec<f64>], r: &'a [f64]) -> Self {
            let righe = m.iter().map(|row| row.iter().enumerate().filter(|(_, a)| a.abs() > EPS).map(|(j, a)| (j, *a)).collect()).collect();
            Verifica { righe, r }
        }

        /// Marks in `libera` the columns the tableau's solution moves by one from `y`, once
        /// that solution is checked against the system itself (rounding in a long run of
        /// pivots must not pass for a solution).
        fn segna(&self, tab: &Tableau, y: &[f64], libera: &mut [bool]) {
            let x: Vec<f64> = (0..y.len()).map(|k| tab.valore(k)).collect();
            let nuove: Vec<usize> = (0..y.len()).filter(|&k| !libera[k] && (x[k] - y[k]).abs() >= 1.0 - POS).collect();
            if nuove.is_empty() {
                return;
            }
            const TOLLERANZA: f64 = 1e-7;
            let valida = x.iter().all(|&v| v >= -TOLLERANZA)
                && self
                    .righe
                    .iter()
                    .zip(self.r)
                    .all(|(row, &b)| (row.iter().map(|&(j, a)| a * x[j]).sum::<f64>() - b).abs() <= TOLLERANZA * (1.0 + b.abs()));
            if valida {
                for k in nuove {
                    libera[k] = true;
                }
            }
        }
    }

    /// The columns of `m y = r, y ≥ 0` (`y` a solution, of whole numbers) whose interval
    /// over all real solutions holds no whole number but `y`'s: no solution moves them by
    /// one or more. `libera` marks the columns already known to move (they are not looked
    /// at again) and on return every column found to move. Columns whose propagated bounds
    /// are already narrow are pinned without a program. The others are settled by any
    /// solution the programs pass through that moves them: first by pushing all unsettled
    /// columns up together, then down (each sweep bounded), then one at a time (up, then
    /// down unless it sits at its bound), each program stopping as soon as its column has
    /// moved by one.
    pub(super) fn strette(m: &[Vec<f64>], r: &[f64], y: &[f64], libera: &mut [bool]) -> Vec<usize> {
        let n = y.len();
        let aperte = |libera: &[bool]| (0..n).filter(|&k| !libera[k]).collect::<Vec<usize>>();
        // Columns the propagated bounds already pin need no program.
        let (lo, hi) = propaga(m, r, n);
        let strette: Vec<bool> = (0..n).map(|k| !libera[k] && hi[k] < y[k] + 1.0 - POS && lo[k] > y[k] - 1.0 + POS).collect();
        let da_provare = |libera: &[bool]| (0..n).filter(|&k| !libera[k] && !strette[k]).collect::<Vec<usize>>();
        if da_provare(libera).is_empty() {
            return aperte(libera);
        }
        let Some(mut tab) = fattibile(m, r) else {
            // Cannot happen for a consistent system; assume the worst.
            return aperte(libera);
        };
        let verifica = Verifica::di(m, r);
        let segna = |tab: &Tableau, libera: &mut [bool]| verifica.segna(tab, y, libera);
        segna(&tab, libera);
        // Sweeps, each bounded: pushing many columns at once settles most in a few pivots.
        let passi = tab.t.len() + 10;
        for verso in [1.0, -1.0] {
            let obj: Vec<(usize, f64)> = da_provare(libera).into_iter().map(|k| (k, verso)).collect();
            if obj.is_empty() {
                break;
            }
            tab.obiettivo(&obj);
            let mut fatti = 0;
            tab.massimizza(passi, &mut |t| {
                segna(t, libera);
                fatti += 1;
                fatti >= passi || obj.iter().all(|&(k, _)| libera[k])
            });
        }
        for k in 0..n {
            if super::scaduto() {
                // Given up: the caller throws the result away.
                return aperte(libera);
            }
            for verso in [1.0, -1.0] {
                if libera[k] || strette[k] {
                    break;
                }
                if verso < 0.0 && y[k] < 1.0 - POS {
                    // At its bound already: it cannot move down by one.
                    break;
                }
                tab.obiettivo(&[(k, verso)]);
                let esito = tab.massimizza(PASSI_PER_CELLA, &mut |t| {
                    segna(t, libera);
                    libera[k]
                });
                if matches!(esito, Esito::Illimitato) {
                    libera[k] = true;
                }
            }
        }
        aperte(libera)
    }
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

    /// One year, no quarters: rows a, b; columns x, y; (a,x) and (b,y) under the threshold.
    fn due_per_due() -> Vec<Cella> {
        vec![
            c("2026", "*", "*", 42),
            c("2026", "a", "*", 20),
            c("2026", "b", "*", 22),
            c("2026", "*", "x", 21),
            c("2026", "*", "y", 21),
            c("2026", "a", "x", 1),
            c("2026", "a", "y", 19),
            c("2026", "b", "x", 20),
            c("2026", "b", "y", 2),
        ]
    }

    #[test]
    fn protection_gives_up_past_its_budget() {
        let cells = due_per_due();
        assert_eq!(sopprimi_entro(&cells, 3, std::time::Duration::ZERO), Err(OltreIlTempo));
        assert_eq!(sopprimi_entro(&cells, 3, std::time::Duration::from_secs(60)), Ok(sopprimi(&cells, 3)));
        // The deadline is this call's only: a later call on the thread has none.
        assert!(!scaduto());
    }

    #[test]
    fn rounding_to_base_five() {
        assert_eq!([0, 2, 3, 7, 8, 12, 13].map(|v| arrotonda(v, 5)), [0, 0, 5, 5, 10, 10, 15]);
    }

    #[test]
    fn a_lone_small_cell_gets_a_companion_in_its_row_and_column() {
        let cells = due_per_due();
        let s = sopprimi(&cells, 3);
        // (a,x) and (b,y) are small; the rest of the 2×2 block follows.
        assert!(s[5] && s[8]);
        assert!(s[6] && s[7], "a 2×2 block with margins needs all four cells suppressed: {s:?}");
        assert!(!s[0] && !s[1] && !s[3]);
    }

    #[test]
    fn cells_pinned_by_the_one_person_bound_get_more_suppression() {
        // Row a: 1, 1, 20 (22); row b: 10, 10, 10 (30). The two 1s are under the threshold;
        // their columns' companions are the 10s of row b. Relations alone then leave the
        // 2×2 block undetermined, but a reader knowing every suppressed cell is at least 1
        // finds a·x + a·y = 22 − 20 = 2, so both are 1, and b·x, b·y follow.
        let cells = vec![
            c("2026", "*", "*", 52),
            c("2026", "a", "*", 22),
            c("2026", "b", "*", 30),
            c("2026", "*", "x", 11),
            c("2026", "*", "y", 11),
            c("2026", "*", "z", 30),
            c("2026", "a", "x", 1),
            c("2026", "a", "y", 1),
            c("2026", "a", "z", 20),
            c("2026", "b", "x", 10),
            c("2026", "b", "y", 10),
            c("2026", "b", "z", 10),
        ];
        let rel = relazioni(&cells);
        let rel: Vec<&Relazione> = rel.iter().collect();
        let valori: Vec<i64> = cells.iter().map(|c| c.persone).collect();
        let mut equality_only = vec![false; cells.len()];
        for i in [6, 7, 9, 10] {
            equality_only[i] = true;
        }
        assert!(derivabili(&rel, &equality_only).is_empty(), "no cell follows from the relations alone");
        assert_eq!(fissate(&rel, &equality_only, &valori), [6, 7, 9, 10], "the bounds pin the whole block");

        let s = sopprimi(&cells, 3);
        assert!(s[6] && s[7], "{s:?}");
        assert!(s[8], "row a's third cell is suppressed too, so a·x and a·y can move: {s:?}");
        assert!(fissate(&rel, &s, &valori).is_empty(), "{s:?}");
        assert!(!s[0] && !s[1] && !s[2], "{s:?}");
    }

    #[test]
    fn bounds_pin_nothing_where_there_is_room() {
        // Row margin 7 over two suppressed cells (1 and 2, published part 4): a·x ∈ [1, 2].
        let cells = vec![c("2026", "a", "*", 7), c("2026", "a", "x", 1), c("2026", "a", "y", 2), c("2026", "a", "z", 4)];
        let rel = relazioni(&cells);
        let rel: Vec<&Relazione> = rel.iter().collect();
        let s = [false, true, true, false];
        assert!(fissate(&rel, &s, &[7, 1, 2, 4]).is_empty());
        // With 1 and 1 (margin 6) both are pinned.
        assert_eq!(fissate(&rel, &s, &[6, 1, 1, 4]), [1, 2]);
    }
}
