-- The day's rows, replaced whole ($ds and $region are bound parameters).
CREATE TABLE IF NOT EXISTS loads (ds TEXT, region TEXT);
CREATE TABLE IF NOT EXISTS zones (ds TEXT, zone TEXT);
DELETE FROM loads WHERE ds = $ds;
DELETE FROM zones WHERE ds = $ds;
INSERT INTO loads VALUES ($ds, $region);
