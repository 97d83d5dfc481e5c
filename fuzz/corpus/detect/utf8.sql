/* ключ lockroute:direct 鍵 */ SELECT 'ſ' -- ß
