# cmake -DBUILD_DIR=… -DSOURCE_DIR=… -DWORK_DIR=… -DVERSION=… -DLIBDIR=… -DWITH_ENGINE=ON|OFF -P install_tree_test.cmake
# Installs the build tree into a fresh prefix, builds the host project native/examples/installed_host
# against it with find_package(ra3 CONFIG), builds embed.c again with pkg-config's flags alone, and
# runs what it built: the kernels' self-checking host and, with the engine, the C API's host.
file(REMOVE_RECURSE ${WORK_DIR})
set(prefix ${WORK_DIR}/prefix)

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE code OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT code EQUAL 0)
    message(FATAL_ERROR "failed (${code}): ${ARGN}\n${out}${err}")
  endif()
  set(output "${out}" PARENT_SCOPE)
endfunction()

run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})
run(${CMAKE_COMMAND} -S ${SOURCE_DIR}/native/examples/installed_host -B ${WORK_DIR}/host
    -DCMAKE_PREFIX_PATH=${prefix} -DRA3_VERSION=${VERSION} -DWITH_ENGINE=${WITH_ENGINE})
run(${CMAKE_COMMAND} --build ${WORK_DIR}/host)
run(${WORK_DIR}/host/embed)
message(STATUS "find_package host: ${output}")

if(WITH_ENGINE)
  if(DEFINED ENV{RA3_SHARED})
    set(shared $ENV{RA3_SHARED})
  else()
    get_filename_component(shared ${SOURCE_DIR}/../shared ABSOLUTE)
  endif()
  set(model ${shared}/fixtures/hf/llama-tiny)
  if(NOT EXISTS ${model}/config.json)
    message(FATAL_ERROR "the fixtures are not at ${shared}/fixtures/hf (set RA3_SHARED to the folder holding fixtures/)")
  endif()
  file(WRITE ${WORK_DIR}/text.txt "def add(a, b):\n    return a + b\n")
  run(${WORK_DIR}/host/engine_host ${model} ${shared}/fixtures/hf/tokenizer-bpe512 ${WORK_DIR}/text.txt)
  message(STATUS "C API host: ${output}")
endif()

# pkg-config: the flags of the installed ra3.pc alone build and link a host.
find_program(pkg_config pkg-config REQUIRED)
run(${CMAKE_COMMAND} -E env PKG_CONFIG_PATH=${prefix}/${LIBDIR}/pkgconfig ${pkg_config} --cflags --libs ra3)
separate_arguments(flags UNIX_COMMAND "${output}")
run(cc -Wall -Werror ${SOURCE_DIR}/native/examples/embed.c ${flags} -lm -o ${WORK_DIR}/embed_pkg_config)
run(${WORK_DIR}/embed_pkg_config)
message(STATUS "pkg-config host: ${output}")
