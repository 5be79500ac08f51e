#include "runtime/mapped_file.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/error.h"

namespace llama_tp {

MappedFile::MappedFile(const std::string& path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) LLAMA_TP_FAIL("cannot open ", path, ": ", std::strerror(errno), ".");
  struct stat st{};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    LLAMA_TP_FAIL("cannot read the size of ", path, ": ", std::strerror(err), ".");
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    LLAMA_TP_FAIL(path, " is not a regular file.");
  }
  size_ = size_t(st.st_size);
  if (size_ > 0) {  // mmap refuses zero-length maps; an empty file is left for callers to reject
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int err = errno;
      ::close(fd);
      LLAMA_TP_FAIL("cannot memory-map ", path, " (", size_, " bytes): ", std::strerror(err), ".");
    }
    data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);  // the mapping stays valid without the descriptor
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

}  // namespace llama_tp
