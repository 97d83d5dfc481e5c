SELECT 1 -- lockroute:direct
