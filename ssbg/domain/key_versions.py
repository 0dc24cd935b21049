"""Key-encryption key versions (SPEC §5): the first version's name and the algorithm."""

FIRST_KEY_VERSION = "P-001"
KEY_ALGORITHM = "EC-P384/HPKE-DHKEM-P384-HKDF-SHA384-AES256GCM"
