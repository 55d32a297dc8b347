"""The gene-embedding benchmark against protein complexes (GRAPE paper, section 4.1).

Modules: ``curate`` (non-overlapping complexes of screened genes), ``average_precision``
(copairs mAP), ``kmeans`` (batched Lloyd k-means in torch), ``clustering`` (purity, NMI,
ARI over repeated k-means and the k sweep), ``recall`` (known-relationship recall),
``umap_plot`` (UMAP figure) and ``benchmark`` (one method end to end; the combined table).
``ood`` and ``ood_eval`` hold the out-of-distribution protocol across plates and wells
(IST paper): folds, macro-F1, LISI, kNN BatchCV and Harmony-kNN.
"""
