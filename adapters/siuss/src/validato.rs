//! Records proven valid by the rules, so that a batch checks each record once.
//!
//! A [`Validato<V>`] is a [`Beneficiario`] or a [`Sinba`] record that passed every rule of
//! [`crate::rules`] for its type ([`crate::rules::validate_beneficiario`],
//! [`crate::rules::validate_sinba_record`]). It can only be obtained
//!
//! - by checking a record: [`Validato::valida`];
//! - from the mapping, which has just checked it: [`crate::from_core::map_validato`];
//! - by merging two of them: [`Validato::unisci`] (see there why the result is valid).
//!
//! The record is read-only behind the proof (`Deref`, [`Validato::get`]);
//! [`Validato::into_inner`] gives it back and drops the proof. A portal batch writer writes
//! it without checking it again ([`crate::FlussoWriter::write_validato`]).
//!
//! The guarantee covers the record, not the flow around it: the flow-level limits of the
//! cooperation channel (one beneficiary with one prestazione, [`crate::rules::validate_ps`])
//! still apply to a flow built from validated records.

use std::ops::Deref;

use crate::model::{Beneficiario, Sinba};
use crate::rules::Violation;
use crate::writer::VoceFlusso;

/// A record that passed every rule of [`crate::rules`] for its type; see the
/// [module documentation](self).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validato<V>(V);

impl<V: VoceFlusso> Validato<V> {
    /// Checks `v`; `path` prefixes the paths of the violations, as in
    /// [`VoceFlusso::validate`].
    pub fn valida(v: V, path: &str) -> Result<Self, Vec<Violation>> {
        v.validate(path)?;
        Ok(Self(v))
    }

    /// Wraps a record the caller has just checked, with no violation found.
    pub(crate) fn gia_validato(v: V) -> Self {
        Self(v)
    }
}

impl<V> Validato<V> {
    /// The record.
    pub fn get(&self) -> &V {
        &self.0
    }

    /// The record, without the proof.
    pub fn into_inner(self) -> V {
        self.0
    }
}

impl<V> Deref for Validato<V> {
    type Target = V;
    fn deref(&self) -> &V {
        &self.0
    }
}

impl<V> AsRef<V> for Validato<V> {
    fn as_ref(&self) -> &V {
        &self.0
    }
}

impl Validato<Beneficiario> {
    /// Appends the prestazioni of `altro` to this beneficiary's, when the two records say the
    /// same about the person: every field but `prestazioni_sociali` (codice fiscale,
    /// anagrafica, indirizzi) is identical. Otherwise leaves `self` as it was and hands
    /// `altro` back, to be written as a record of its own.
    ///
    /// The result is valid without checking it again: the rules check the person's fields,
    /// identical to those of `self`, which passed; each prestazione on its own, and each
    /// passed in its own record; and that there is at least one prestazione. No rule
    /// concerns several prestazioni together (no maximum, no duplicates: the XSD has
    /// `maxOccurs="unbounded"` and no key), so a longer list breaks none. Debug builds check
    /// the merged record anyway, to catch a future rule that would break this.
    // The record handed back is moved, not boxed: it is usually written or kept next.
    #[allow(clippy::result_large_err)]
    pub fn unisci(&mut self, altro: Self) -> Result<(), Self> {
        let (a, mut b) = (&mut self.0, altro.0);
        let pa = std::mem::take(&mut a.prestazioni_sociali);
        let pb = std::mem::take(&mut b.prestazioni_sociali);
        let stessa = *a == b;
        a.prestazioni_sociali = pa;
        b.prestazioni_sociali = pb;
        if !stessa {
            return Err(Self(b));
        }
        a.prestazioni_sociali.extend(b.prestazioni_sociali);
        debug_assert!(a.validate("beneficiario").is_ok(), "merge broke a rule");
        Ok(())
    }
}

impl Validato<Sinba> {
    /// Adds the codici prestazione of `altro` that this record does not list yet, when the
    /// two records say the same about the minor: every field but `prestazioni` is identical.
    /// Otherwise leaves `self` as it was and hands `altro` back, to be written as a record of
    /// its own.
    ///
    /// The result is valid without checking it again, for the same reasons as for a
    /// beneficiary ([`Validato::<Beneficiario>::unisci`]): the codes are checked one at a
    /// time (and each passed in its own record) plus "at least one", and no rule concerns
    /// them together.
    // The record handed back is moved, not boxed: it is usually written or kept next.
    #[allow(clippy::result_large_err)]
    pub fn unisci(&mut self, altro: Self) -> Result<(), Self> {
        let (a, mut b) = (&mut self.0, altro.0);
        let pa = std::mem::take(&mut a.prestazioni);
        let pb = std::mem::take(&mut b.prestazioni);
        let stessa = *a == b;
        a.prestazioni = pa;
        b.prestazioni = pb;
        if !stessa {
            return Err(Self(b));
        }
        for c in b.prestazioni {
            if !a.prestazioni.contains(&c) {
                a.prestazioni.push(c);
            }
        }
        debug_assert!(a.validate("sinba").is_ok(), "merge broke a rule");
        Ok(())
    }
}
