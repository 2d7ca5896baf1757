# Warnings every rill target is built with.
function(rill_set_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic)
  if(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    target_compile_options(${target} PRIVATE -Wthread-safety)
  endif()
  # g++ 12 at -O3 (Release) reports -Wrestrict inside libstdc++ for "literal" + std::string,
  # which the tests, examples and benchmarks write everywhere: a false positive (GCC bug 105329).
  # Only those targets go without it on g++ 12; the library keeps the warning.
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_GREATER_EQUAL 12
     AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13 AND NOT target STREQUAL "rill")
    target_compile_options(${target} PRIVATE -Wno-restrict)
  endif()
  if(RILL_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
