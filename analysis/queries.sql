-- Example DuckDB queries over medaug results.
-- Run one with:   medaug results query RESULTS "<query>"
-- or in duckdb:   CREATE VIEW results AS SELECT * FROM read_parquet('RESULTS/**/*.parquet', union_by_name = true);
-- (RESULTS = OUT/results; `medaug results query` also accepts OUT and then reads OUT/results.)
-- Metrics are fractions (0.8269 = 82.69 %). Columns: medaug/store/results.py.

-- 1. Mean ± std test ACC/AUC and seed count per dataset and configuration (seed 000 Table 2 style).
SELECT dataset, classifier, augmentation, wrs,
       json_extract_string(synthetic_provenance, '$.generator') AS generator,
       count(*)                        AS seeds,
       round(100 * avg(test_acc), 2)   AS acc,
       round(100 * stddev_samp(test_acc), 2) AS acc_std,
       round(100 * avg(test_auc), 2)   AS auc
FROM results
WHERE status = 'finished'
GROUP BY ALL
ORDER BY dataset, generator NULLS FIRST, augmentation, wrs;

-- 2. Per-seed ACC gain of every configuration over its baseline (no geometric, no WRS, no synthetic),
--    matched on dataset, classifier, size, epochs and seed: the pairs the paired tests use.
WITH base AS (
    SELECT dataset, classifier, size, epochs, seed, test_acc AS base_acc
    FROM results
    WHERE status = 'finished' AND augmentation = 'none' AND NOT wrs AND synthetic IS NULL
)
SELECT r.dataset, r.augmentation, r.wrs, json_extract_string(r.synthetic_provenance, '$.generator') AS generator,
       count(*) AS matched_seeds,
       round(100 * avg(r.test_acc - b.base_acc), 2) AS mean_gain_pp,
       round(100 * min(r.test_acc - b.base_acc), 2) AS worst_pp,
       round(100 * max(r.test_acc - b.base_acc), 2) AS best_pp
FROM results r
JOIN base b USING (dataset, classifier, size, epochs, seed)
WHERE r.status = 'finished' AND NOT (r.augmentation = 'none' AND NOT r.wrs AND r.synthetic IS NULL)
GROUP BY ALL
ORDER BY r.dataset, mean_gain_pp DESC;

-- 3. Failed runs and why.
SELECT run_id, dataset, augmentation, wrs, seed, executor, slurm_job_id, requeues,
       split_part(error, chr(10), 1) AS error
FROM results
WHERE status <> 'finished'
ORDER BY dataset, run_id;

-- 4. Training throughput and wall time per device and classifier.
SELECT device, classifier, size, count(*) AS runs,
       round(avg(train_images_per_s)) AS images_per_s,
       round(avg(wall_seconds), 1) AS wall_s
FROM results
WHERE status = 'finished'
GROUP BY ALL
ORDER BY images_per_s DESC;

-- 5. Validation ACC per epoch of one configuration (the curves of seed 000 Figs. 30-44), from `history`.
SELECT seed, h.epoch, round(h.train_loss, 4) AS train_loss, round(h.val_acc, 4) AS val_acc, round(h.val_auc, 4) AS val_auc
FROM (SELECT seed, unnest(history) AS h FROM results
      WHERE dataset = 'breastmnist' AND augmentation = 'none' AND NOT wrs AND synthetic IS NULL)
ORDER BY seed, h.epoch;

-- 6. Is the best epoch late (still improving) or early (overfitting)? Share of runs by best epoch / epochs.
SELECT dataset, round(avg(best_epoch::DOUBLE / epochs), 2) AS mean_best_epoch_fraction,
       count(*) FILTER (WHERE best_epoch = epochs) AS runs_best_at_last_epoch, count(*) AS runs
FROM results
WHERE status = 'finished'
GROUP BY dataset
ORDER BY dataset;

-- 7. Generator fidelity beside downstream gain (needs OUT/generator-eval; view `generator_eval`).
-- SELECT g.dataset, g.generator, avg(g.fid) AS fid, avg(g.fid_floor) AS fid_floor, avg(g.tstr_acc) AS tstr
-- FROM generator_eval g GROUP BY ALL ORDER BY fid;
