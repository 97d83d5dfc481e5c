-- lockroute:direct
SELECT 1