// Package synth makes a large realistic table from a small real one: it
// fits a Gaussian copula to a table (Fit) and samples any number of rows
// from it (Model.Sample), streaming, in the source's schema.
//
// A copula is, per column, the empirical marginal distribution — a
// float64 column's sorted values (drawn by inverse CDF, interpolating
// between neighbouring order statistics, rounded to the column's
// decimals), an int64 or timestamp column's distinct values and counts,
// a string or bool column's categories and counts (both drawn exactly at
// their frequencies) — and one correlation matrix over all columns tying
// them together: that of the latent standard normals whose CDF values
// pick each column's value. A cell is null (or NaN) independently, at
// its column's share. Fitting with By a column makes a copula for each of
// its values (a class, say), drawn at the value's share of the rows.
//
// The correlation matrix starts from the columns' normal scores
// z = Φ⁻¹(rank/(n+1)) (average ranks for ties: a category's score is the
// mid-point of its cumulative interval; a string column's categories are
// ordered by their mean score on the numeric column they tell most
// about), pairwise over the rows where both columns are present,
// corrected for the coarsening of discrete columns (latent.go) and made
// positive definite (a weighted nearest correlation matrix,
// correlation.go). With MatchPearson (the default) or MatchSpearman it is
// then calibrated until a sample has the source's Pearson (or Spearman)
// correlations (calibrate.go).
//
// The files: fit.go (Fit, strata), collect.go (reading rows, marginals,
// ranks), normal.go (Φ, Φ⁻¹, ranks), latent.go, correlation.go,
// calibrate.go, sample.go (Sample: batches made in parallel, written in
// order, each from its own random stream), model.go (the model and its
// JSON form). docs/analysis.md ("Synthesise") states the accuracy the
// tests check.
package synth
