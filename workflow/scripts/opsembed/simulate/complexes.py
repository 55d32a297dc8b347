"""The demo gene library: real CORUM complexes and the phenotype each one causes.

Memberships are factual (CORUM 4.0, human): each complex lists 5-6 of its real subunits
(a subset where the complex is larger), and no gene belongs to two listed complexes.
Phenotype effects are in units of the cell-to-cell standard deviation of each parameter
(see ``opsembed.simulate.phenotypes.PARAMS``); ``mitotic`` is a shift of the log-odds of
a cell being in mitosis. They are plausible caricatures of the published knockout
phenotypes, chosen so that related complexes look alike but stay separable.
"""

from __future__ import annotations

import os

from opsembed.io.atomic import atomic_path

COMPLEXES: dict[str, list[str]] = {
    "Condensin I complex": ["SMC2", "SMC4", "NCAPD2", "NCAPG", "NCAPH"],
    "MCM complex": ["MCM2", "MCM3", "MCM4", "MCM5", "MCM6", "MCM7"],
    "RFC complex": ["RFC1", "RFC2", "RFC3", "RFC4", "RFC5"],
    "Fanconi anemia FAAP100 complex": ["FANCA", "FANCB", "FANCC", "FANCE", "FANCF", "FANCG"],
    "Anaphase-promoting complex": ["ANAPC1", "ANAPC2", "ANAPC4", "ANAPC5", "CDC16", "CDC27"],
    "Gamma-tubulin complex": ["TUBG1", "TUBGCP2", "TUBGCP3", "TUBGCP4", "TUBGCP5", "TUBGCP6"],
    "CCT complex (chaperonin containing TCP1 complex)": ["TCP1", "CCT2", "CCT3", "CCT4", "CCT5", "CCT7"],
    "Arp2/3 protein complex": ["ACTR2", "ACTR3", "ARPC2", "ARPC3", "ARPC4", "ARPC5"],
    "Wave-2 complex": ["WASF2", "CYFIP1", "NCKAP1", "ABI1", "BRK1"],
    "26S proteasome": ["PSMA1", "PSMA3", "PSMB2", "PSMC2", "PSMD4"],
}
"""Complex name -> member gene symbols (56 genes in 10 complexes)."""

PHENOTYPES: dict[str, dict[str, float]] = {
    # chromosome condensation fails: large, dim, smooth, misshapen nuclei; mitotic delay
    "Condensin I complex": {"nucleus_radius": 1.5, "dna_intensity": -1.5, "dna_texture": -1.5,
                            "nucleus_aspect": 1.0, "mitotic": 1.5},
    # replication stress: S/G2 arrest with more DNA, bigger nuclei and gamma-H2AX foci
    "MCM complex": {"foci_rate": 2.5, "nucleus_radius": 1.5, "dna_intensity": 1.5,
                    "cell_radius": 1.0},
    "RFC complex": {"foci_rate": 2.0, "nucleus_radius": 1.0, "dna_texture": 1.5,
                    "dna_intensity": 1.0},
    # interstrand-crosslink repair: many foci, irregular nuclei
    "Fanconi anemia FAAP100 complex": {"foci_rate": 2.5, "nucleus_aspect": 1.5,
                                       "nucleus_radius": 0.5},
    # metaphase arrest: many round mitotic cells with a bright cortex
    "Anaphase-promoting complex": {"mitotic": 3.0, "cell_elongation": -1.5,
                                   "actin_intensity": 1.0},
    # spindle assembly fails: mitotic arrest, sparse microtubules, polyploid nuclei
    "Gamma-tubulin complex": {"mitotic": 2.0, "tubulin_filaments": -2.0,
                              "tubulin_intensity": -0.5, "nucleus_radius": 1.0},
    # chaperonin for tubulin and actin folding: dim tubulin and actin, small cells
    "CCT complex (chaperonin containing TCP1 complex)": {"tubulin_intensity": -2.0,
                                                         "tubulin_filaments": -1.0,
                                                         "actin_intensity": -1.5,
                                                         "cell_radius": -1.5},
    # branched actin lost: weak cortex, stress fibres instead, elongated cells
    "Arp2/3 protein complex": {"actin_intensity": -1.5, "stress_fibres": 2.0,
                               "cell_elongation": 1.5},
    "Wave-2 complex": {"actin_intensity": -1.0, "stress_fibres": 1.0, "cell_elongation": 2.0,
                       "cell_radius": -1.0},
    # proteotoxic stress: large cells and nuclei, some damage and G2/M delay
    "26S proteasome": {"cell_radius": 1.5, "nucleus_radius": 1.0, "foci_rate": 1.0,
                       "mitotic": 1.0, "tubulin_intensity": 1.0},
}
"""Complex name -> {parameter: effect}; parameters not named have effect 0."""


def gene_library() -> list[str]:
    """All library genes (no controls), in the order of ``COMPLEXES``."""
    return [gene for genes in COMPLEXES.values() for gene in genes]


def complex_of() -> dict[str, str]:
    """Gene symbol -> the name of its complex."""
    return {gene: name for name, genes in COMPLEXES.items() for gene in genes}


def write_complexes(path: str | os.PathLike) -> None:
    """Write ``COMPLEXES`` atomically as EFAAR TSV: ``name<TAB>space-separated genes``, no header."""
    with atomic_path(path) as tmp:
        with open(tmp, "w") as handle:
            for name, genes in COMPLEXES.items():
                handle.write(f"{name}\t{' '.join(genes)}\n")
