#!/usr/bin/env python3
"""The peer: splink (DuckDB backend) on the same office exports, the same blocking keys,
the same training sessions and the same link threshold as `sigess linkage`.

Fields are prepared the way the hub prepares them (accents folded, upper-case letters,
dates read as dd/mm/yyyy with '/', '-' or '.'), so the comparison is about the linkage.
Writes `ufficio_origine;id_persona;cluster` for every record, like `sigess linkage`.

    run_splink.py EXPORT_DIR --clusters-out FILE [--link-threshold 0.9]
"""
import argparse
import csv
import io
import os
import re
import sys
import time
import unicodedata

import duckdb  # noqa: F401  (the backend)
import pyarrow as pa
import splink.comparison_library as cl
from splink import DuckDBAPI, Linker, SettingsCreator, block_on


def decode(b):
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return b.decode("cp1252")


def fold(s):
    s = "".join(c for c in unicodedata.normalize("NFKD", s) if not unicodedata.combining(c))
    s = re.sub(r"[\s\-]+", " ", "".join(c for c in s.upper() if (c.isascii() and c.isalpha()) or c in " -\t"))
    return s.strip()


def parse_date(s):
    m = re.fullmatch(r"(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{4})", s.strip())
    if not m:
        return None
    d, mo, y = (int(x) for x in m.groups())
    try:
        import datetime
        return datetime.date(y, mo, d).isoformat()
    except ValueError:
        return None


def read(export_dir):
    rows = []
    for office in sorted(os.listdir(export_dir)):
        path = os.path.join(export_dir, office, "persone.csv")
        if not os.path.isfile(path):
            continue
        with open(path, "rb") as f:
            lines = f.read().split(b"\n")
        text = "\n".join(decode(l) for l in lines)
        for r in csv.DictReader(io.StringIO(text, newline=""), delimiter=";"):
            cognome, nome = fold(r.get("cognome") or ""), fold(r.get("nome") or "")
            dob = parse_date(r.get("data_nascita") or "")
            cf = re.sub(r"\s", "", (r.get("codice_fiscale") or "")).upper() or None
            sesso = (r.get("sesso") or "").strip().upper() or None
            rows.append({
                "unique_id": f"{office}|{r['id_persona'].strip()}",
                "cognome": cognome or None,
                "nome": nome or None,
                "data_nascita": dob,
                "luogo": fold(r.get("luogo_nascita") or "") or None,
                "sesso": sesso if sesso in ("M", "F") else None,
                "codice_fiscale": cf,
                # The hub's blocking keys, as columns.
                "nomi_ordinati": " | ".join(sorted([cognome, nome])) if cognome and nome else None,
                "anno": dob[:4] if dob else None,
                "cf11": cf[:11] if cf and len(cf) >= 11 else None,
                "iniziale": cognome[:1] or None,
                "mese_giorno": dob[5:] if dob else None,
            })
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("export_dir")
    ap.add_argument("--clusters-out", required=True)
    ap.add_argument("--link-threshold", type=float, default=0.9)
    a = ap.parse_args()
    t0 = time.perf_counter()
    rows = read(a.export_dir)
    db_api = DuckDBAPI()
    df = db_api.register(pa.Table.from_pylist(rows))
    settings = SettingsCreator(
        link_type="dedupe_only",
        comparisons=[
            cl.ForenameSurnameComparison("nome", "cognome", jaro_winkler_thresholds=[0.92, 0.80]),
            cl.DateOfBirthComparison("data_nascita", input_is_string=True),
            cl.JaroWinklerAtThresholds("luogo", [0.88]),
            cl.ExactMatch("sesso"),
            cl.LevenshteinAtThresholds("codice_fiscale", [2]),
        ],
        blocking_rules_to_generate_predictions=[
            block_on("data_nascita"),
            block_on("nomi_ordinati"),
            block_on("cognome", "anno"),
            block_on("cf11"),
            block_on("nome", "iniziale", "mese_giorno"),
        ],
        retain_matching_columns=False,
    )
    linker = Linker(df, settings, log_level="WARNING")
    # Prior: exact codice fiscale and birth date admit almost no false links; about 60 % of
    # the duplicates carry both (missing and mistyped codes, mistyped dates).
    linker.training.estimate_probability_two_random_records_match(
        [block_on("codice_fiscale", "data_nascita")], recall=0.6)
    linker.training.estimate_u_using_random_sampling(max_pairs=1e6, seed=15)
    # The same two training sessions as the hub: birth date, and surname+name unordered.
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("data_nascita"))
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("nomi_ordinati"))
    pred = linker.inference.predict(threshold_match_probability=0.05)
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(pred, threshold_match_probability=a.link_threshold)
    table = clusters.as_pyarrow_table()
    ids, cids = table.column("unique_id").to_pylist(), table.column("cluster_id").to_pylist()
    with open(a.clusters_out, "w", encoding="utf-8", newline="") as f:
        f.write("ufficio_origine;id_persona;cluster\n")
        for uid, cid in zip(ids, cids):
            f.write(f"{uid.replace('|', ';')};{cid.replace('|', '/')}\n")
    print(f"splink {len(rows)} records in {time.perf_counter() - t0:.2f}s", file=sys.stderr)


if __name__ == "__main__":
    main()
