#!/usr/bin/env python3
"""Fake CSV exports of the 26 social-services offices of Roma Capitale, with known truth.

Every person is invented: names are drawn from common Italian (and a few foreign) names,
codici fiscali are computed from the fake data. The same true person is registered in one or
more offices with the errors real registries show: typos, name and surname swapped,
day/month swapped, missing or mistyped codici fiscali, a missing birth place or sex. Some
distinct people share name, birth date and place (homonyms): the later ones have an
omocodic codice fiscale, as the Agenzia delle Entrate assigns. Half the offices export in
Windows-1252, the others in UTF-8.

Layout of one office's folder (see README.md): persone.csv, nuclei.csv, cartelle.csv,
prestazioni.csv, ';'-separated with a header row, dates dd/mm/yyyy (one office uses
dd-mm-yyyy), amounts with a decimal comma. `truth.csv` in the output root maps every
(ufficio_origine, id_persona) to the true person.

Households carry kinships and prestazioni what the hub requires of them (denominazione,
carattere, prova dei mezzi, protocollo), with their own planted errors (a malformed SIUSS
code, an occasional prestazione without its date, a periodic one across two years, an
amount with a thousands separator, an ISO date, an unknown kinship). They are drawn from a
second random stream, so the persons, and so the linkage benchmark, are the same as before
these columns existed.

    python3 gen_offices.py --persons 2000 --seed 7 --out /tmp/offices
"""
import argparse
import csv
import datetime as dt
import os
import random
import unicodedata

COGNOMI = """Rossi Russo Ferrari Esposito Bianchi Romano Colombo Ricci Marino Greco Bruno Gallo Conti
De_Luca Costa Giordano Mancini Rizzo Lombardi Moretti Barbieri Fontana Santoro Mariani Rinaldi Caruso
Ferrara Galli Martini Leone Longo Gentile Martinelli Vitale Lombardo Serra Coppola De_Santis D'Angelo
Marchetti Parisi Villa Conte Ferraro Ferri Fabbri Bianco Marini Grasso Valentini Messina Sala De_Angelis
Gatti Pellegrini Palumbo Sanna Farina Rizzi Monti Cattaneo Morelli Amato Silvestri Mazza Testa Grassi
Pellegrino Carbone Giuliani Benedetti Barone Rossetti Caputo Montanari Guerra Palmieri Bernardi
Martino Fiore De_Rosa Ferretti Bellini Basile Riva Donati Piras Vitali Battaglia Sartori Neri Costantini
Milani Pagano Ruggiero Sorrentino D'Amico Orlando Damico Negri Popescu Hoxha Haddad Santos Rahman
Nicolò Fabbrò Cantù""".split()
NOMI_M = """Marco Luca Giuseppe Francesco Alessandro Andrea Matteo Lorenzo Davide Paolo Stefano Giorgio
Antonio Giovanni Roberto Mario Luigi Salvatore Vincenzo Fabio Simone Massimo Riccardo Daniele Federico
Emanuele Gabriele Tommaso Filippo Nicola Niccolò Pietro Carlo Alberto Claudio Sergio Enrico Michele
Domenico Raffaele Angelo Bruno Franco Gianluca Valerio Ion Mohamed Ahmed Jose Andrei""".split()
NOMI_F = """Giulia Francesca Sara Chiara Anna Maria Elena Laura Martina Alessia Paola Silvia Giorgia
Federica Valentina Roberta Simona Cristina Barbara Monica Daniela Rita Angela Rosa Lucia Teresa
Giovanna Carla Antonella Alessandra Claudia Emanuela Ilaria Serena Marta Beatrice Noemi Aurora
Ludovica Camilla Irene Ioana Fatima Aisha Rosalía Nicoletta Agnese Marisa""".split()
# (comune or state of birth as registries spell it, codice catastale/Belfiore, weight)
LUOGHI = [("Roma", "H501", 55), ("Milano", "F205", 3), ("Napoli", "F839", 5), ("Torino", "L219", 2),
          ("Palermo", "G273", 3), ("Bari", "A662", 2), ("Firenze", "D612", 1), ("Latina", "E472", 2),
          ("Frosinone", "D810", 2), ("Viterbo", "M082", 1), ("Rieti", "H282", 1), ("Tivoli", "L182", 1),
          ("Guidonia Montecelio", "E263", 1), ("Fiumicino", "M297", 1), ("Reggio Calabria", "H224", 1),
          ("Albania", "Z100", 2), ("Romania", "Z129", 4), ("Marocco", "Z330", 2), ("Filippine", "Z216", 2),
          ("Bangladesh", "Z249", 2), ("Egitto", "Z336", 1), ("Ucraina", "Z138", 1), ("Perù", "Z611", 1)]
# ISO 3166-1 numeric citizenship of people born abroad (the others are Italian, 380).
CITTADINANZE = {"Z100": "008", "Z129": "642", "Z330": "504", "Z216": "608", "Z249": "050", "Z336": "818",
                "Z138": "804", "Z611": "604"}
VIE = ["Via Appia Nuova", "Via Tuscolana", "Via Casilina", "Via Prenestina", "Via Tiburtina",
       "Via Nomentana", "Via Salaria", "Via Cassia", "Via Aurelia", "Via Portuense", "Via Ostiense",
       "Viale Marconi", "Via Laurentina", "Via Cristoforo Colombo", "Via dei Castani"]
PRESTAZIONI = ["A1.01", "A1.04", "B1.02", "B2.01", "C1.03", "D1.01"]
# Denominazione an office writes for each code (10-200 characters, as the hub requires).
DENOMINAZIONI = {"A1.01": "Segretariato sociale e orientamento", "A1.04": "Attività di socializzazione",
                 "B1.02": "Assistenza domiciliare socio-assistenziale", "B2.01": "Contributo economico straordinario",
                 "C1.03": "Contributo per il canone di locazione", "D1.01": "Pasti a domicilio"}
PROVA_MEZZI = ["isee", "isee", "isee", "nessuna", "altra", "isee_esente"]
PARENTELE = ["coniuge", "figlio", "figlia", "genitore", "fratello", "sorella", "convivente", "nipote", "componente"]
AREE = ["famiglia_minori", "disabili", "dipendenze", "anziani", "immigrati", "poverta", "multiutenza"]

MONTHS = "ABCDEHLMPRST"
OMO = "LMNPQRSTUV"
ODD = [1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23]
OMO_POS = [14, 13, 12, 10, 9, 7, 6]  # substituted from the right, as the Agenzia does


def offices():
    """26 offices: two in Municipi I–XI, one in XII–XV. Returns (folder, ufficio)."""
    out = []
    for m in range(1, 16):
        for k in ("A", "B") if m <= 11 else ("A",):
            out.append((f"M{m:02d}-{k}", f"M{m:02d}"))
    return out


def ascii_upper(s):
    return "".join(c for c in unicodedata.normalize("NFKD", s) if c.isascii() and c.isalpha()).upper()


def name_part(s, is_nome):
    up = ascii_upper(s)
    cons = [c for c in up if c not in "AEIOU"]
    vow = [c for c in up if c in "AEIOU"]
    picked = [cons[0], cons[2], cons[3]] if is_nome and len(cons) >= 4 else (cons + vow)[:3]
    return "".join(picked).ljust(3, "X")


def check_char(s15):
    total = 0
    for i, c in enumerate(s15):
        idx = int(c) if c.isdigit() else ord(c) - 65
        total += ODD[idx] if i % 2 == 0 else idx
    return chr(65 + total % 26)


def compose_cf(cognome, nome, birth, female, belfiore, omocodia=0):
    s = name_part(cognome, False) + name_part(nome, True)
    s += f"{birth.year % 100:02d}{MONTHS[birth.month - 1]}{birth.day + (40 if female else 0):02d}{belfiore}"
    chars = list(s)
    for pos in OMO_POS[:omocodia]:
        chars[pos] = OMO[int(chars[pos])]
    s = "".join(chars)
    return s + check_char(s)


def typo(rng, s):
    if len(s) < 3:
        return s
    i = rng.randrange(1, len(s) - 1)
    op = rng.random()
    letters = "aeioulnrstcmdp"
    if op < 0.35:
        return s[:i] + rng.choice(letters) + s[i + 1:]
    if op < 0.6:
        return s[:i] + s[i + 1:]
    if op < 0.8:
        return s[:i] + s[i + 1] + s[i] + s[i + 2:]
    return s[:i] + rng.choice(letters) + s[i:]


def weighted(rng, items):
    # Zipf-like: earlier names are more common, as in real registries.
    return items[min(int(rng.paretovariate(1.1)) - 1, len(items) - 1) if rng.random() < 0.6 else rng.randrange(len(items))]


class Person:
    __slots__ = ("pid", "cognome", "nome", "female", "birth", "luogo", "belfiore", "cf", "via")


def make_people(rng, n):
    people, seen = [], {}
    luoghi = [l for l in LUOGHI for _ in range(l[2])]
    for pid in range(n):
        p = Person()
        p.pid = f"P{pid:07d}"
        homonym = people and rng.random() < 0.01
        if homonym:
            # A distinct person with the same name, birth date and place as someone already
            # drawn: the second code gets omocodia.
            o = rng.choice(people)
            p.cognome, p.nome, p.female, p.birth, p.luogo, p.belfiore = o.cognome, o.nome, o.female, o.birth, o.luogo, o.belfiore
        else:
            p.female = rng.random() < 0.52
            p.cognome = weighted(rng, COGNOMI).replace("_", " ")
            p.nome = weighted(rng, NOMI_F if p.female else NOMI_M)
            if rng.random() < 0.05:
                p.nome += " " + weighted(rng, NOMI_F if p.female else NOMI_M)
            p.birth = dt.date(1930, 1, 1) + dt.timedelta(days=rng.randrange(0, 365 * 90))
            p.luogo, p.belfiore, _ = rng.choice(luoghi)
        base = compose_cf(p.cognome, p.nome, p.birth, p.female, p.belfiore)
        k = seen.get(base[:15], 0)
        seen[base[:15]] = k + 1
        p.cf = compose_cf(p.cognome, p.nome, p.birth, p.female, p.belfiore, omocodia=k)
        p.via = f"{rng.choice(VIE)} {rng.randrange(1, 300)}"
        people.append(p)
    return people


def fmt_date(d, sep):
    return f"{d.day:02d}{sep}{d.month:02d}{sep}{d.year:04d}"


def noisy_record(rng, p, sep, err):
    """One office's registration of person p: (cognome, nome, sesso, data, luogo, cf)."""
    cognome, nome = p.cognome, p.nome
    if rng.random() < err * 1.0:
        cognome = typo(rng, cognome)
    if rng.random() < err * 1.0:
        nome = typo(rng, nome)
    if rng.random() < err * 0.3:
        cognome, nome = nome, cognome
    case = rng.random()
    if case < 0.3:
        cognome, nome = cognome.upper(), nome.upper()
    d = p.birth
    r = rng.random()
    if r < err * 0.3 and d.day <= 12 and d.day != d.month:
        date = f"{d.month:02d}{sep}{d.day:02d}{sep}{d.year:04d}"
    elif r < err * 0.6:
        s = list(fmt_date(d, sep))
        i = rng.choice([0, 1, 3, 4, 8, 9])
        s[i] = str(rng.randrange(10))
        date = "".join(s)
        try:
            dt.datetime.strptime(date, f"%d{sep}%m{sep}%Y")
        except ValueError:
            date = fmt_date(d, sep)
    elif r < err * 0.65:
        date = ""
    else:
        date = fmt_date(d, sep)
    luogo = p.luogo
    r = rng.random()
    if r < err * 0.4:
        luogo = ""
    elif r < err * 0.7:
        luogo = typo(rng, luogo)
    elif rng.random() < 0.3:
        luogo = luogo.upper()
    sesso = "F" if p.female else "M"
    if rng.random() < err * 0.2:
        sesso = ""
    cf = p.cf
    r = rng.random()
    if r < err * 1.5:
        cf = ""
    elif r < err * 1.8:
        # A mistyped character: the check character no longer matches.
        i = rng.randrange(0, 15)
        cf = cf[:i] + (rng.choice("0123456789") if cf[i].isdigit() else rng.choice("ABCDEFGHLMNPRSTVZ")) + cf[i + 1:]
    elif r < err * 1.9:
        # Another person's code, or one made from a mistyped name: a valid check character
        # that disagrees with the record.
        cf = compose_cf(typo(rng, p.cognome), p.nome, p.birth, p.female, p.belfiore)
    elif rng.random() < 0.2:
        cf = cf.lower()
    codice_luogo = p.belfiore if rng.random() > err * 0.3 else ""
    return cognome, nome, sesso, date, luogo, codice_luogo, cf


def prestazione_row(extra, err, sid, cid, codice, start, end, euro, sep):
    """A prestazioni.csv row: periodic (monthly amount, within one year) or occasional (paid
    on one day), with the errors offices make at `err`'s rates."""
    periodica = extra.random() < 0.5
    denominazione = DENOMINAZIONI[codice]
    prova = extra.choice(PROVA_MEZZI)
    protocollo = f"PROT/{start.year}/{extra.randrange(1, 99999):05d}"
    if periodica:
        end = min(end, dt.date(start.year, 12, 31))
        inizio, fine, erogazione = fmt_date(start, sep), fmt_date(end, sep), ""
        stato = "conclusa" if end < dt.date(2026, 1, 1) else "attiva"
    else:
        inizio, fine, erogazione = "", "", fmt_date(start, sep)
        stato = "conclusa"
    importo = f"{euro // 100},{euro % 100:02d}"
    r = extra.random()
    if r < err * 0.1:
        codice = codice.replace(".", "/")  # not a SIUSS code
    elif r < err * 0.2 and not periodica:
        erogazione = ""  # an occasional prestazione needs its day
    elif r < err * 0.3 and periodica:
        fine = fmt_date(dt.date(start.year + 1, 1, 31), sep)  # across two years
    elif r < err * 0.35 and euro >= 100000:
        importo = f"{euro // 100000}.{euro // 100 % 1000:03d},{euro % 100:02d}"  # thousands separator
    elif r < err * 0.4:
        erogazione = start.isoformat() if erogazione else erogazione
        inizio = start.isoformat() if inizio else inizio
    return [sid, cid, codice, denominazione, "periodica" if periodica else "occasionale", prova, protocollo, inizio, fine,
            erogazione, importo, stato]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--persons", type=int, default=2000, help="true persons")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--error-rate", type=float, default=0.1, help="base rate of each kind of error")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    # Households' and prestazioni's extra columns: a stream of their own (see the docstring).
    extra = random.Random(a.seed * 7919 + 1)
    err = a.error_rate
    people = make_people(rng, a.persons)
    offs = offices()
    rows = {o: [] for o, _ in offs}
    for p in people:
        r = rng.random()
        copies = 1 if r < 0.65 else 2 if r < 0.88 else 3 if r < 0.97 else 4
        home = rng.randrange(len(offs))
        chosen = [home]
        for _ in range(copies - 1):
            # Moves and services elsewhere: mostly a neighbouring office, sometimes the same
            # office registering the person twice.
            chosen.append(home if rng.random() < 0.1 else rng.randrange(len(offs)))
        for o in chosen:
            rows[offs[o][0]].append(p)
    os.makedirs(a.out, exist_ok=True)
    truth = []
    for k, (folder, ufficio) in enumerate(offs):
        enc = "cp1252" if k % 2 else "utf-8"
        sep = "-" if folder == "M07-A" else "/"
        d = os.path.join(a.out, folder)
        os.makedirs(d, exist_ok=True)
        ps = rows[folder]
        rng.shuffle(ps)
        nid = 0
        with open(os.path.join(d, "persone.csv"), "w", encoding=enc, newline="") as fp, \
             open(os.path.join(d, "nuclei.csv"), "w", encoding=enc, newline="") as fn, \
             open(os.path.join(d, "cartelle.csv"), "w", encoding=enc, newline="") as fc, \
             open(os.path.join(d, "prestazioni.csv"), "w", encoding=enc, newline="") as fs:
            wp, wn, wc, ws = (csv.writer(f, delimiter=";", lineterminator="\r\n") for f in (fp, fn, fc, fs))
            wp.writerow(["id_persona", "cognome", "nome", "sesso", "data_nascita", "luogo_nascita", "codice_luogo_nascita",
                         "cittadinanza", "codice_fiscale", "indirizzo"])
            wn.writerow(["id_nucleo", "id_persona", "relazione"])
            wc.writerow(["id_cartella", "id_persona", "data_apertura", "area_utenza", "stato", "data_chiusura", "motivo_chiusura"])
            ws.writerow(["id_prestazione", "id_cartella", "codice_prestazione", "denominazione", "carattere", "prova_mezzi",
                         "protocollo_domanda", "data_inizio", "data_fine", "data_erogazione", "importo", "stato"])
            i = 0
            while i < len(ps):
                size = min(rng.choice([1, 1, 1, 2, 2, 3, 4]), len(ps) - i)
                nid += 1
                for j, p in enumerate(ps[i:i + size]):
                    lid = f"{folder[:3]}{k:02d}{i + j + 1:07d}"
                    cognome, nome, sesso, date, luogo, codice_luogo, cf = noisy_record(rng, p, sep, a.error_rate)
                    cittadinanza = CITTADINANZE.get(p.belfiore, "380")
                    wp.writerow([lid, cognome, nome, sesso, date, luogo, codice_luogo, cittadinanza, cf, p.via])
                    relazione = "intestatario" if j == 0 else extra.choice(PARENTELE)
                    if extra.random() < err * 0.05:
                        relazione = "zio"  # not a kinship the layout knows: the household is left out
                    wn.writerow([f"N{k:02d}{nid:07d}", lid, relazione])
                    truth.append((folder, ufficio, lid, p.pid))
                    if rng.random() < 0.6:
                        cid = f"C{lid}"
                        opened = dt.date(2015, 1, 1) + dt.timedelta(days=rng.randrange(0, 3600))
                        closed = min(opened + dt.timedelta(days=rng.randrange(30, 900)), dt.date(2026, 6, 30))
                        if rng.random() < 0.33:
                            wc.writerow([cid, lid, fmt_date(opened, sep), rng.choice(AREE), "chiusa", fmt_date(closed, sep), "Obiettivi del progetto raggiunti"])
                        else:
                            wc.writerow([cid, lid, fmt_date(opened, sep), rng.choice(AREE), "aperta", "", ""])
                        for n in range(rng.choice([0, 0, 1, 1, 2, 3])):
                            start = opened + dt.timedelta(days=rng.randrange(0, 300))
                            end = start + dt.timedelta(days=rng.randrange(0, 365))
                            euro = rng.randrange(50, 500000)
                            codice = rng.choice(PRESTAZIONI)
                            ws.writerow(prestazione_row(extra, err, f"S{lid}{n}", cid, codice, start, end, euro, sep))
                i += size
    with open(os.path.join(a.out, "truth.csv"), "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, delimiter=";", lineterminator="\n")
        w.writerow(["ufficio_origine", "ufficio", "id_persona", "persona_vera"])
        w.writerows(truth)
    print(f"{len(people)} true persons, {len(truth)} person records in {len(offs)} offices under {a.out}")


if __name__ == "__main__":
    main()
