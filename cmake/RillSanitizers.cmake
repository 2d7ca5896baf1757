# RILL_SANITIZE=asan builds everything with AddressSanitizer and UndefinedBehaviorSanitizer,
# RILL_SANITIZE=tsan with ThreadSanitizer.
if(RILL_SANITIZE STREQUAL "asan")
  add_compile_options(-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
elseif(RILL_SANITIZE STREQUAL "tsan")
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer)
  add_link_options(-fsanitize=thread)
elseif(NOT RILL_SANITIZE STREQUAL "")
  message(FATAL_ERROR "RILL_SANITIZE must be empty, 'asan' or 'tsan', not '${RILL_SANITIZE}'")
endif()
