# phiforge build.  `make` -> build/libphiforge.a + build/phiforge;  `make test`;  `make SANITIZE=1 test`
# Every src/**/*.c is part of the library except src/cli (the command-line tool).
# Files named *_avx2.c are compiled with AVX2/FMA/F16C enabled and only called after a CPUID check;
# files named *_avx512.c also with AVX-512 F/VL/BW/VNNI (called only when pf_cpu_has_avx512vnni()).

CC      ?= cc
MODE    := $(if $(filter 1,$(SANITIZE)),san,rel)
OBJDIR  := build/obj-$(MODE)
CSTD    := -std=c11 -D_GNU_SOURCE
WARN    := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter
ifeq ($(MODE),san)
  OPT   := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
  LDSAN := -fsanitize=address,undefined
else
  OPT   := -O2 -g
  LDSAN :=
endif
# Debian libraries the knowledge base uses (storage, Unicode, document formats, JSON), and libcurl (pull).
DEPS    := sqlite3 libutf8proc libxml-2.0 poppler-glib libzip libcjson libcurl
DEPS_CFLAGS := $(shell pkg-config --cflags $(DEPS) 2>/dev/null)
DEPS_LIBS   := $(shell pkg-config --libs $(DEPS) 2>/dev/null)
CFLAGS_ALL = $(CSTD) $(WARN) $(OPT) -Iinclude -Isrc -pthread $(DEPS_CFLAGS) $(CFLAGS)
AVX2FLAGS := -mavx2 -mfma -mf16c
AVX512FLAGS := $(AVX2FLAGS) -mavx512f -mavx512vl -mavx512bw -mavx512vnni
LDLIBS  := $(DEPS_LIBS) -lm -lpthread

LIB_SRC  := $(shell find src -name '*.c' -not -path 'src/cli/*' | sort)
CLI_SRC  := $(shell find src/cli -name '*.c' | sort)
TEST_SRC := $(sort $(wildcard tests/test_*.c))
TEST_UTIL:= $(filter-out $(TEST_SRC),$(wildcard tests/*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(OBJDIR)/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(OBJDIR)/%.o)
TEST_BIN := $(TEST_SRC:tests/%.c=build/tests/%)
TEST_UTIL_OBJ := $(TEST_UTIL:%.c=$(OBJDIR)/%.o)

.PHONY: all test demo bench fuzz fuzz-run fuzz-run-extract fuzz-run-data fuzz-run-safetensors clean
.SECONDARY:
all: build/libphiforge.a build/phiforge

# Remember the last mode so switching SANITIZE relinks the outputs.
build/.mode-$(MODE):
	@mkdir -p build && rm -f build/.mode-* && touch $@

$(OBJDIR)/%_avx512.o: %_avx512.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(AVX512FLAGS) -MMD -MP -c $< -o $@

$(OBJDIR)/%_avx2.o: %_avx2.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(AVX2FLAGS) -MMD -MP -c $< -o $@

$(OBJDIR)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -MMD -MP -c $< -o $@

build/libphiforge.a: $(LIB_OBJ) build/.mode-$(MODE)
	@rm -f $@
	ar rcs $@ $(LIB_OBJ)

build/phiforge: $(CLI_OBJ) build/libphiforge.a
	$(CC) $(LDSAN) -pthread -o $@ $(CLI_OBJ) build/libphiforge.a $(LDLIBS)

build/tests/%: $(OBJDIR)/tests/%.o $(TEST_UTIL_OBJ) build/libphiforge.a
	@mkdir -p build/tests
	$(CC) $(LDSAN) -pthread -o $@ $< $(TEST_UTIL_OBJ) build/libphiforge.a $(LDLIBS)

test: all $(TEST_BIN)
	@bash tests/run.sh $(TEST_BIN)

# The main job end to end on the industry pack (examples/pumps): ingest, ask with citations,
# fine-tune a LoRA, eval table. Uses pulled models when present, offline fallbacks otherwise.
demo: all
	./build/phiforge demo

# Benchmarks (minutes; not part of the tests): kernels vs memory bandwidth, HNSW vs hnswlib,
# ingestion MB/s and chunks/s, search latency at 100k chunks.
bench: build/phiforge
	./build/phiforge bench-kernels
	bash bench/run_hnsw_bench.sh
	bash bench/bench_ingest.sh
	./build/phiforge bench-search --embed-model tests/data/bert-tiny-cls.gguf

# libFuzzer target for the GGUF reader (needs clang). FUZZ_SECONDS bounds a run.
FUZZ_SECONDS ?= 60
build/fuzz/fuzz_gguf: fuzz/fuzz_gguf.c $(LIB_SRC)
	@mkdir -p build/fuzz
	clang $(CSTD) -g -O1 -Iinclude -Isrc -pthread $(DEPS_CFLAGS) -fsanitize=fuzzer,address,undefined \
	  $(AVX512FLAGS) -o $@ fuzz/fuzz_gguf.c $(LIB_SRC) $(LDLIBS)
fuzz: build/fuzz/fuzz_gguf
fuzz-run: build/fuzz/fuzz_gguf
	@mkdir -p build/fuzz/corpus && cp -n tests/data/*.gguf build/fuzz/corpus/ 2>/dev/null || true
	./build/fuzz/fuzz_gguf -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -rss_limit_mb=2048 \
	  build/fuzz/corpus fuzz/seeds

# libFuzzer target for the document extractors (md/csv/json/jsonl/html/txt, picked by the first
# input byte). Seeds are the fixtures in tests/data/docs, each prefixed with its selector byte.
EXTRACT_SRC := $(wildcard src/extract/*.c) src/core/error.c
build/fuzz/fuzz_extract: fuzz/fuzz_extract.c $(EXTRACT_SRC) $(wildcard src/extract/*.h) include/phiforge.h
	@mkdir -p build/fuzz
	clang $(CSTD) -g -O1 -Iinclude -Isrc -pthread $(DEPS_CFLAGS) -fsanitize=fuzzer,address,undefined \
	  -o $@ fuzz/fuzz_extract.c $(EXTRACT_SRC) $(LDLIBS)
fuzz: build/fuzz/fuzz_extract
fuzz-run-extract: build/fuzz/fuzz_extract
	@mkdir -p build/fuzz/corpus-extract
	@i=0; for t in md:0 csv:1 json:2 jsonl:3 html:4 txt:5; do \
	  for f in tests/data/docs/*.$${t%%:*}; do i=$$((i+1)); \
	    { printf "\\$$(printf %03o $${t##*:})"; cat "$$f"; } > build/fuzz/corpus-extract/seed$$i; done; done
	./build/fuzz/fuzz_extract -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -rss_limit_mb=2048 -timeout=10 \
	  build/fuzz/corpus-extract

clean:
	rm -rf build

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(TEST_SRC:tests/%.c=$(OBJDIR)/tests/%.d)

# libFuzzer target for the fine-tuning data loader (JSONL chat/alpaca/completion/text, .txt);
# the first input byte picks format and options, see fuzz/fuzz_data.c. Needs tests/data/phi3-tiny-f16.gguf.
build/fuzz/fuzz_data: fuzz/fuzz_data.c $(LIB_SRC) include/phiforge.h
	@mkdir -p build/fuzz
	clang $(CSTD) -g -O1 -Iinclude -Isrc -pthread $(DEPS_CFLAGS) -fsanitize=fuzzer,address,undefined \
	  -mavx2 -mfma -mf16c -o $@ fuzz/fuzz_data.c $(LIB_SRC) $(LDLIBS)
fuzz: build/fuzz/fuzz_data
fuzz-run-data: build/fuzz/fuzz_data
	@mkdir -p build/fuzz/corpus-data
	./build/fuzz/fuzz_data -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -rss_limit_mb=2048 -timeout=10 \
	  build/fuzz/corpus-data fuzz/seeds-data

# libFuzzer target for the safetensors reader (PEFT adapters); seeds: fuzz/seeds-safetensors.
LORA_FUZZ_SRC := src/lora/safetensors.c src/core/error.c src/core/half.c
build/fuzz/fuzz_safetensors: fuzz/fuzz_safetensors.c $(LORA_FUZZ_SRC) src/lora/lora_internal.h include/phiforge.h
	@mkdir -p build/fuzz
	clang $(CSTD) -g -O1 -Iinclude -Isrc -pthread $(DEPS_CFLAGS) -fsanitize=fuzzer,address,undefined \
	  -o $@ fuzz/fuzz_safetensors.c $(LORA_FUZZ_SRC) $(LDLIBS)
fuzz: build/fuzz/fuzz_safetensors
fuzz-run-safetensors: build/fuzz/fuzz_safetensors
	@mkdir -p build/fuzz/corpus-safetensors
	./build/fuzz/fuzz_safetensors -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -rss_limit_mb=2048 -timeout=10 \
	  build/fuzz/corpus-safetensors fuzz/seeds-safetensors
