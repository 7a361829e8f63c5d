// LevelDB's C API, from Debian's libleveldb-dev.
#include <leveldb/c.h>
