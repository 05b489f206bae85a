// A doubly linked list threaded through its elements, for O(1) removal of a session or connection that is
// closing, with no allocation. Elements derive from IntrusiveList<T, Tag>::Hook; an element is in at most one list
// per Tag (a session can be in the shard's session list and in its wait queue at once).
#pragma once

#include <cstddef>

namespace lb::base {

template <typename T, typename Tag = void>
class IntrusiveList {
  public:
    class Hook {
        friend class IntrusiveList;
        T* prev_ = nullptr;
        T* next_ = nullptr;
        bool linked_ = false;

      public:
        bool linked() const { return linked_; }
    };

    void push_front(T* item) {
        Hook& h = *item;
        h.prev_ = nullptr;
        h.next_ = head_;
        if (head_) static_cast<Hook&>(*head_).prev_ = item;
        head_ = item;
        if (!tail_) tail_ = item;
        h.linked_ = true;
        ++size_;
    }

    void remove(T* item) {
        Hook& h = *item;
        if (!h.linked_) return;
        if (h.prev_)
            static_cast<Hook&>(*h.prev_).next_ = h.next_;
        else
            head_ = h.next_;
        if (h.next_)
            static_cast<Hook&>(*h.next_).prev_ = h.prev_;
        else
            tail_ = h.prev_;
        h.prev_ = h.next_ = nullptr;
        h.linked_ = false;
        --size_;
    }

    T* pop_front() {
        T* item = head_;
        if (item) remove(item);
        return item;
    }

    // The element pushed first: push_front plus pop_back make a FIFO queue.
    T* pop_back() {
        T* item = tail_;
        if (item) remove(item);
        return item;
    }

    // Calls fn on every element; fn may remove the element it is given (and only that one).
    template <typename Fn>
    void for_each(Fn&& fn) {
        for (T* item = head_; item;) {
            T* next = static_cast<Hook&>(*item).next_;
            fn(item);
            item = next;
        }
    }

    T* front() const { return head_; }
    bool empty() const { return head_ == nullptr; }
    size_t size() const { return size_; }

  private:
    T* head_ = nullptr;
    T* tail_ = nullptr;
    size_t size_ = 0;
};

}  // namespace lb::base
