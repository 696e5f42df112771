// Dispatcher of the ap_fixed oracle: reads "<combo-id> <count>" records (see
// harness.h) from argv[1] and writes the header's answers to argv[2].  The
// generated registry.cpp maps combination ids to instantiated runners.
#include "harness.h"

const combo_entry* oracle_find(int id);

int main(int argc, char** argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s INPUT OUTPUT\n", argv[0]);
        return 2;
    }
    FILE* in = fopen(argv[1], "r");
    FILE* out = fopen(argv[2], "w");
    if (!in || !out) {
        perror("oracle");
        return 2;
    }
    int id;
    long count;
    while (fscanf(in, "%d %ld", &id, &count) == 2) {
        const combo_entry* entry = oracle_find(id);
        if (!entry) {
            fprintf(stderr, "oracle: unknown combination id %d\n", id);
            return 2;
        }
        entry->run(in, out, count);
    }
    fclose(out);
    return 0;
}
